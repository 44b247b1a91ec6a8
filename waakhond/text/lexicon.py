"""Multilingual keyword lexicons (waakhond/text/lexicons/<code>.yaml, schema in SCHEMA.md).

English is always matched. Other languages are matched when the language identifier finds the
prompt plausibly in them, or when they use a script other than Latin: a word that means
"child" in one language can be an everyday word in another ("barn" in Swedish, "kind" in
Dutch), and a sexual word next to such a collision would read as sexual content of a minor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from waakhond.errors import PolicyError

LEXICON_DIR = Path(__file__).with_name("lexicons")
INTENTS = ("sexual", "suggestive", "undress", "minor", "real_person", "pronoun")
ALWAYS = "en"
# A language other than the most likely one joins the match from this probability on.
_PLAUSIBLE = 0.15
# Languages written in Latin script: only these can collide with each other's everyday words.
# (The Hindi lexicon holds romanised Hinglish too, but Devanagari is its own script.)
LATIN_SCRIPT = frozenset({"cs", "da", "de", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "id",
                          "it", "lt", "lv", "ms", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
                          "tr"})
# A word character, including the combining vowel signs of Indic scripts that \w misses.
_WORD_CHAR = r"[\w\u0300-\u036f\u0900-\u0dff]"


@dataclass(frozen=True)
class Hit:
    intent: str
    term: str
    language: str


# Intents matched in every language, whatever the prompt's identified language, so that one
# foreign word in an English prompt ("woman desnuda on the beach") is still read. Minor and
# person words are not: a collision there would turn an adult prompt into a report.
CROSS_LANGUAGE = ("sexual", "undress")
# Cross-language and misspelling matches need this many letters, so short words that mean
# something else elsewhere ("gol" is "naked" in Romanian and "goal" in Spanish) stay out.
_MIN_FOREIGN = 5
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Lexicon:
    language: str
    latin: bool  # written in Latin script: collisions with other Latin languages possible
    patterns: dict[str, re.Pattern[str]]
    age: re.Pattern[str] | None
    # Single words of the cross-language intents, for matching misspellings.
    words: dict[str, str]
    missing_letter: dict[str, str]  # each word with one letter left out -> the word

    def hits(self, text: str, intents: tuple[str, ...] = INTENTS) -> list[Hit]:
        found = [
            Hit(intent, match.group(), self.language)
            for intent, pattern in self.patterns.items() if intent in intents
            for match in pattern.finditer(text)
        ]
        if self.age and "minor" in intents:
            found += [Hit("minor", m.group(), self.language) for m in self.age.finditer(text)]
        return found

    def misspellings(self, text: str) -> list[Hit]:
        """Words one letter short of, or one letter longer than, a listed word ("nakte" for
        "nackte"). Substituted letters are not matched: "baked" must not read as "naked"."""
        found = []
        for token in _TOKEN.findall(text):
            if len(token) < _MIN_FOREIGN or token in self.words:
                continue
            word = self.missing_letter.get(token) or next(
                (d for d in _deletions(token) if d in self.words), None)
            if word:
                found.append(Hit(self.words[word], f"{token}~{word}", self.language))
        return found


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _fuzzy_words(terms: dict[str, list[str]]) -> tuple[dict[str, str], dict[str, str]]:
    words = {
        term: intent
        for intent in CROSS_LANGUAGE
        for term in terms.get(intent) or []
        if len(term) >= _MIN_FOREIGN and term.isalpha()
    }
    missing = {d: word for word in words for d in _deletions(word) if d not in words}
    return words, missing


def _term_pattern(term: str, words: bool) -> str:
    prefix = term.endswith("*")
    parts = [re.escape(part) for part in term.rstrip("*").split()]
    body = r"\s+".join(parts) + (rf"{_WORD_CHAR}*" if prefix else "")
    return rf"(?<!{_WORD_CHAR}){body}(?!{_WORD_CHAR})" if words else body


def _compile(terms: list[str], words: bool) -> re.Pattern[str] | None:
    if not terms:
        return None
    # Longest first, so a phrase wins over a word inside it.
    ordered = sorted(set(terms), key=len, reverse=True)
    return re.compile("|".join(_term_pattern(t, words) for t in ordered))


def _age_pattern(units: list[str], words: bool) -> re.Pattern[str] | None:
    """An age under 18 written as a number and a unit: "12 year", "12yo", "12 jaar"."""
    if not units:
        return None
    # The unit may follow the number directly ("12yo", "12enne"), so no boundary before it.
    unit = "|".join(_term_pattern(u, False) for u in sorted(units, key=len, reverse=True))
    tail = f"(?!{_WORD_CHAR})" if words else ""
    return re.compile(rf"(?<![\d.,])(?:1[0-7]|[1-9])(?:\s*|-)(?:{unit}){tail}")


def _load(path: Path) -> Lexicon:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        words = data["boundaries"] == "words"
        terms = data["terms"]
        patterns = {
            intent: pattern
            for intent in INTENTS
            if (pattern := _compile(terms.get(intent) or [], words)) is not None
        }
        fuzzy_words, missing_letter = _fuzzy_words(terms) if words else ({}, {})
        return Lexicon(
            language=data["language"],
            latin=data["language"] in LATIN_SCRIPT,
            patterns=patterns,
            age=_age_pattern(data.get("age_units") or [], words),
            words=fuzzy_words,
            missing_letter=missing_letter,
        )
    except (yaml.YAMLError, KeyError, TypeError, re.error) as exc:
        raise PolicyError(f"lexicon {path.name}: {exc}") from exc


@cache
def lexicons() -> dict[str, Lexicon]:
    return {path.stem: _load(path) for path in sorted(LEXICON_DIR.glob("*.yaml"))}


@cache
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages([code for code in lexicons() if code in identifier.nb_classes])
    return identifier


def languages_of(text: str) -> list[tuple[str, float]]:
    """The plausible languages of a prompt, most likely first: the top one, and any other
    the identifier is not merely guessing at (it spreads small shares on short prompts)."""
    ranked = [(code, round(float(p), 3)) for code, p in _identifier().rank(text)[:3]]
    return ranked[:1] + [(code, p) for code, p in ranked[1:] if p >= _PLAUSIBLE]


def match(texts: tuple[str, ...], languages: list[str]) -> list[Hit]:
    """Every lexicon hit in any of the texts: all intents from English, the given languages
    and every language in a non-Latin script (those cannot collide with Latin-script words);
    long sexual and undressing words from every other language; and misspellings of those
    in the last text (the de-obfuscated view)."""
    hits: dict[tuple[str, str, str], Hit] = {}
    distinct = tuple(dict.fromkeys(texts))  # most prompts carry no obfuscation: one scan
    for code, lexicon in lexicons().items():
        trusted = code == ALWAYS or code in languages or not lexicon.latin
        found = [hit for text in distinct
                 for hit in lexicon.hits(text, INTENTS if trusted else CROSS_LANGUAGE)]
        if not trusted:
            found = [hit for hit in found if len(hit.term) >= _MIN_FOREIGN]
        elif texts:
            found += lexicon.misspellings(texts[-1])
        for hit in found:
            hits.setdefault((hit.intent, hit.term, hit.language), hit)
    return list(hits.values())
