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
# A language joins the match when the identifier gives it at least this probability.
_PLAUSIBLE = 0.05
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


@dataclass(frozen=True)
class Lexicon:
    language: str
    latin: bool  # written in Latin script: collisions with other Latin languages possible
    patterns: dict[str, re.Pattern[str]]
    age: re.Pattern[str] | None

    def hits(self, text: str) -> list[Hit]:
        found = [
            Hit(intent, match.group(), self.language)
            for intent, pattern in self.patterns.items()
            for match in pattern.finditer(text)
        ]
        if self.age:
            found += [Hit("minor", m.group(), self.language) for m in self.age.finditer(text)]
        return found


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
        return Lexicon(
            language=data["language"],
            latin=data["language"] in LATIN_SCRIPT,
            patterns=patterns,
            age=_age_pattern(data.get("age_units") or [], words),
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
    """The plausible languages of a prompt, most likely first."""
    ranked = _identifier().rank(text)
    return [(code, round(float(p), 3)) for code, p in ranked[:3] if p >= _PLAUSIBLE]


def match(texts: tuple[str, ...], languages: list[str]) -> list[Hit]:
    """Every lexicon hit in any of the texts, from English, the given languages, and every
    language in a non-Latin script (those cannot collide with Latin-script words)."""
    hits: dict[tuple[str, str, str], Hit] = {}
    for code, lexicon in lexicons().items():
        if code != ALWAYS and code not in languages and lexicon.latin:
            continue
        for text in texts:
            for hit in lexicon.hits(text):
                hits.setdefault((hit.intent, hit.term, hit.language), hit)
    return list(hits.values())
