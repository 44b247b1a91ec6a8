"""Multilingual keyword lexicons (waakhond/text/lexicons/<code>.yaml, schema in SCHEMA.md).

English is always matched. Other languages are matched when the language identifier finds the
prompt plausibly in them, or when they use a script other than Latin: a word that means
"child" in one language can be an everyday word in another ("barn" in Swedish, "kind" in
Dutch), and a sexual word next to such a collision would read as sexual content of a minor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from pathlib import Path

import yaml
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from waakhond.errors import PolicyError
from waakhond.text import words

LEXICON_DIR = Path(__file__).with_name("lexicons")
INTENTS = ("sexual", "suggestive", "undress", "minor", "real_person", "nudity_prone", "pronoun",
           "figure", "generator_style", "garment", "see_through", "ambiguous")
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
    # Where the term was found in the text matched (character offsets, end exclusive).
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)


# Intents matched in every language, whatever the prompt's identified language, so that one
# foreign word in an English prompt ("woman desnuda on the beach") is still read. Minor and
# person words are not: a collision there would turn an adult prompt into a report.
CROSS_LANGUAGE = ("sexual", "undress")
# Cross-language and misspelling matches need this many letters, so short words that mean
# something else elsewhere ("gol" is "naked" in Romanian and "goal" in Spanish) stay out.
_MIN_FOREIGN = 4
_MIN_STEM = 5
_TOKEN = re.compile(r"\w+")
_NEXT_WORD = re.compile(r"\W*(\w+)")
# Shorter undressing verbs have slips that are everyday verbs with a person after them
# ("strip": "strap her in").
_MIN_ADDRESSED = 6
# A slip of a stem is read before an ending of at most this many letters ("naakd-e"); a
# longer rest makes a compound word, whose beginning is often a slip of something else.
_MAX_ENDING = 4
_WORD = re.compile(f"{_WORD_CHAR}+")
# An English word is read as another language's everyday word there when it is at most this
# many Zipf points rarer in that language than in English (0.5: about three times rarer).
_LOANWORD_MARGIN = 0.5


@dataclass(frozen=True)
class _Term:
    intent: str
    words: tuple[str, ...]
    prefix: bool  # the last word may continue ("porn*" matches "porno")
    head: bool = False  # a one-word term that may end a compound ("*lingerie": "spetslingerie")


class PhraseIndex:
    """Whole-word terms looked up word by word instead of by one regular expression.

    A long alternation is tried at every character of the prompt (a 500-character tag list
    took about 1 ms per lexicon, 34 lexicons); the prompt's words are split once and each is
    looked up in a dictionary of first words. Words are runs of word characters, so a term's
    words match across any punctuation or spacing ("see-through", "see through").
    """

    def __init__(self, terms: dict[str, list[str]]) -> None:
        self._exact: dict[str, list[_Term]] = {}
        self._prefixed: dict[str, list[_Term]] = {}
        self._heads: dict[str, list[_Term]] = {}
        for intent, phrases in terms.items():
            for phrase in phrases:
                words = tuple(_WORD.findall(phrase.strip("*")))
                if not words:
                    continue
                term = _Term(intent, words, phrase.endswith("*"), phrase.startswith("*"))
                if term.head and len(words) > 1:
                    raise PolicyError(f"compound head {phrase!r}: one word only")
                first = (self._heads if term.head else
                         self._prefixed if term.prefix and len(words) == 1 else self._exact)
                first.setdefault(words[0], []).append(term)
        self._prefix_lengths = sorted({len(p) for p in self._prefixed})
        self._head_lengths = sorted({len(h) for h in self._heads})
        self.intents = frozenset(terms)

    def _starting_with(self, word: str) -> list[_Term]:
        found = list(self._exact.get(word, ()))
        for length in self._prefix_lengths:
            if length > len(word):
                break
            found += self._prefixed.get(word[:length], ())
        return found + self._compounds_ending(word)

    def _compounds_ending(self, word: str) -> list[_Term]:
        """Compound-head terms that end the word, alone or after another word
        ("spets|lingerie"), or, taking endings, end it but for the ending ("spets|lingerie|t")."""
        found = []
        for length in self._head_lengths:
            for start in range(len(word) - length + 1):
                for term in self._heads.get(word[start:start + length], ()):
                    if term.prefix or start + length == len(word):
                        found.append(term)
        return found

    def hits(self, text: str, intents: tuple[str, ...], language: str) -> list[Hit]:
        spans = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
        found = []
        for i, (word, start, _) in enumerate(spans):
            for term in self._starting_with(word):
                if term.intent in intents and _continues(term, spans, i):
                    end = spans[i + len(term.words) - 1][2]
                    found.append(Hit(term.intent, text[start:end], language, start, end))
        return found


def _continues(term: _Term, spans: list[tuple[str, int, int]], i: int) -> bool:
    if term.head:  # one word, found inside the word by _compounds_ending
        return True
    words = [span[0] for span in spans[i:i + len(term.words)]]
    if len(words) < len(term.words) or words[:-1] != list(term.words[:-1]):
        return False
    last, wanted = words[-1], term.words[-1]
    return last.startswith(wanted) if term.prefix else last == wanted


@dataclass(frozen=True)
class Lexicon:
    language: str
    latin: bool  # written in Latin script: collisions with other Latin languages possible
    # Whole-word languages are looked up word by word; Chinese, Japanese and Korean (written
    # without spaces) by substring patterns, tried only when the prompt holds their letters.
    phrases: PhraseIndex | None
    patterns: dict[str, re.Pattern[str]]
    letters: frozenset[str]
    age: re.Pattern[str] | None
    # Single words of the cross-language intents, for matching misspellings.
    words: dict[str, str]
    near: dict[str, str]  # each of those words and its one-letter deletions -> the word
    stems: frozenset[str]  # those of the words that take endings ("nackt*")
    pronouns: frozenset[str]  # "her", "him": counted as a person only with an input photo

    @property
    def intents(self) -> frozenset[str]:
        return self.phrases.intents if self.phrases else frozenset(self.patterns)

    def hits(self, text: str, intents: tuple[str, ...] = INTENTS) -> list[Hit]:
        if self.phrases:
            found = self.phrases.hits(text, intents, self.language)
        elif self.letters.isdisjoint(text):
            found = []
        else:
            found = [
                Hit(intent, match.group(), self.language, match.start(), match.end())
                for intent, pattern in self.patterns.items() if intent in intents
                for match in pattern.finditer(text)
            ]
        if self.age and "minor" in intents and any(c.isdigit() for c in text):
            found += [Hit("minor", m.group(), self.language, m.start(), m.end())
                      for m in self.age.finditer(text)]
        return found

    def misspellings(self, text: str, spoken: list[str]) -> list[Hit]:
        """Words one typing slip away from a listed word: a letter left out, added, changed
        or two swapped ("nakid", "nuda", "nakde"), also before an ending when the word takes
        endings ("naakde" for "naakte", from "naakt*"). A token that is an everyday word of
        the ``spoken`` languages is no slip ("baked" is not "naked"), unless it addresses
        someone ("undres her")."""
        found = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            if len(token) < _MIN_FOREIGN or token in self.words:
                continue
            word = self._slip_of(token) or self._slip_before_ending(token, spoken)
            if not word:
                continue
            if words.common(token, spoken) and not self._addresses_someone(word, text,
                                                                            match.end()):
                continue
            found.append(Hit(self.words[word], f"{token}~{word}", self.language, match.start(),
                             match.end()))
        return found

    def _slip_before_ending(self, token: str, spoken: list[str]) -> str | None:
        """A stem that the token's beginning is a slip of, when the rest is short enough to be
        an ending and the beginning is no word of its own. Finnish compounds made children's
        scenes reports: "poronkäristys" (reindeer stew) began like "porno", "pillien"
        (straws) is "pilli" and an ending, not a slip of "pillu*"."""
        for piece in self._pieces(token):
            stem = self._slip_of(piece)
            if (stem in self.stems and len(token) - len(piece) <= _MAX_ENDING
                    and not words.common(piece, spoken)):
                return stem
        return None

    def _addresses_someone(self, word: str, text: str, slip_end: int) -> bool:
        """Whether a slip of ``word``, an undressing verb of six letters or more, is followed
        by one of this language's pronouns ("undres her"): an edit instruction, even where the
        slip is a word of another language the prompt may be in (Danish "undres", to wonder)."""
        following = _NEXT_WORD.match(text, slip_end)
        return (self.words.get(word) == "undress" and len(word) >= _MIN_ADDRESSED
                and following is not None and following.group(1) in self.pronouns)

    def _slip_of(self, token: str) -> str | None:
        return self.near.get(token) or next(
            (self.near[d] for d in _deletions(token) if d in self.near), None)

    @cached_property
    def _piece_lengths(self) -> frozenset[int]:
        return frozenset(len(stem) + delta for stem in self.stems for delta in (-1, 0, 1))

    def _pieces(self, token: str) -> list[str]:
        """The token's beginnings as long as a stem, one letter shorter or one longer, longest
        first (in a fixed order, so that a token always reads as the same word)."""
        return [token[:n] for n in sorted(self._piece_lengths, reverse=True)
                if _MIN_FOREIGN <= n < len(token)]


def _deletions(word: str) -> list[str]:
    """The word less one letter, each way once, in order (a set's order changes from run to
    run, and a token one slip from two words would read as either)."""
    return list(dict.fromkeys(word[:i] + word[i + 1:] for i in range(len(word))))


def _fuzzy_words(terms: dict[str, list[str]]
                 ) -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    """The cross-language words of a lexicon (intent by word; a word that takes endings by its
    stem), and their one-edit index: each word and each of its one-letter deletions -> the
    word. Two words are a slip apart when one is among the other's deletions or their
    deletions meet (the SymSpell idea: a changed or swapped letter)."""
    singles = [(intent, term.rstrip("*"), term.endswith("*"))
               for intent in CROSS_LANGUAGE for term in terms.get(intent) or []]
    words = {word: intent for intent, word, _ in singles
             if len(word) >= _MIN_FOREIGN and word.isalpha()}
    near = {d: word for word in words for d in (word, *_deletions(word))
            if len(d) >= _MIN_FOREIGN - 1}
    # Only stems of five letters or more: a shorter one matches the beginnings of too many
    # words ("porn*" and "portret", portrait in Croatian).
    stems = frozenset(word for _, word, takes_endings in singles
                      if takes_endings and len(word) >= _MIN_STEM and word in words)
    return words, near, stems


def _term_pattern(term: str) -> str:
    prefix = term.endswith("*")
    parts = [re.escape(part) for part in term.rstrip("*").split()]
    body = r"\s+".join(parts) + (rf"{_WORD_CHAR}*" if prefix else "")
    return body


def _compile(terms: list[str]) -> re.Pattern[str] | None:
    """Substring patterns, for languages written without spaces between words."""
    if not terms:
        return None
    # Longest first, so a phrase wins over a word inside it.
    ordered = sorted(set(terms), key=len, reverse=True)
    return re.compile("|".join(_term_pattern(t) for t in ordered))


def _age_pattern(units: list[str], words: bool) -> re.Pattern[str] | None:
    """An age under 18 written as a number and a unit: "12 year", "12yo", "12 jaar"."""
    if not units:
        return None
    # The unit may follow the number directly ("12yo", "12enne"), so no boundary before it.
    unit = "|".join(_term_pattern(u) for u in sorted(units, key=len, reverse=True))
    tail = f"(?!{_WORD_CHAR})" if words else ""
    return re.compile(rf"(?<![\d.,])(?:1[0-7]|[1-9])(?:\s*|-)(?:{unit}){tail}")


def _load(path: Path) -> Lexicon:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        words = data["boundaries"] == "words"
        terms = {intent: data["terms"][intent] for intent in INTENTS
                 if data["terms"].get(intent)}
        patterns = {} if words else {
            intent: pattern
            for intent in INTENTS
            if (pattern := _compile(terms.get(intent) or [])) is not None
        }
        fuzzy_words, near, stems = _fuzzy_words(terms) if words else ({}, {}, frozenset())
        return Lexicon(
            language=data["language"],
            latin=data["language"] in LATIN_SCRIPT,
            phrases=PhraseIndex(terms) if words else None,
            patterns=patterns,
            letters=frozenset("".join(p for ps in terms.values() for p in ps)) - {"*", " "},
            age=_age_pattern(data.get("age_units") or [], words),
            words=fuzzy_words,
            near=near,
            stems=stems,
            pronouns=frozenset(terms.get("pronoun") or []),
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
    sexual and undressing words from every other language; and misspellings of those in the
    last text (the de-obfuscated view), in the prompt's languages. A foreign word or a
    misspelling that is an everyday word of the prompt's languages ("seks" is "six" in
    Danish, "baked" is not "naked") is not a hit."""
    hits: dict[tuple[str, str, str], Hit] = {}
    spoken = [ALWAYS, *languages]
    # Slips are read in English and the prompt's own languages, and only where word lists can
    # rule out real words in every language the prompt may be in (Irish has none: "ocht",
    # eight, is a slip from "nocht", naked). A slip read wrongly next to a child word would
    # become a report, so a prompt that cannot be checked is not read for slips at all.
    checkable = all(words.listed(language) for language in spoken)
    for text in dict.fromkeys(texts):  # most prompts carry no obfuscation: one scan
        found = []
        for code, lexicon in lexicons().items():
            trusted = code == ALWAYS or code in languages or not lexicon.latin
            in_lexicon = lexicon.hits(text, INTENTS if trusted else CROSS_LANGUAGE)
            if lexicon.phrases is None:
                in_lexicon = _not_across_words(in_lexicon, text, _reading_language(code, languages))
            if not trusted:
                in_lexicon = [hit for hit in in_lexicon if len(hit.term) >= _MIN_FOREIGN
                              and not words.common(hit.term, spoken)]
            elif code in languages[1:] and code != ALWAYS:
                in_lexicon = _without_likelier_readings(in_lexicon, languages[0])
            elif code == ALWAYS and languages and languages[0] != ALWAYS:
                in_lexicon = _everyday_words_as_ambiguous(in_lexicon, languages)
            if text == texts[-1] and checkable and (code == ALWAYS or code in languages):
                in_lexicon += lexicon.misspellings(text, spoken)
            found += in_lexicon
        for hit in _outside_partial_undress(found):
            hits.setdefault((hit.intent, hit.term, hit.language), hit)
    return list(hits.values())


def _not_across_words(found: list[Hit], text: str, language: str) -> list[Hit]:
    """The hits of a language written without spaces, less those that an everyday word of the
    likeliest reading of the text into words cuts across: 性感 (sexy) in 流行性|感冒
    (influenza), 做爱 in 争做|爱国 (strive to be patriotic), 少女 (a girl) in 至少|女人 (at
    least the women), Korean 음부 (vulva) in 처음|부터 (from the start). Next to a child word,
    or a sexual word, each was a report. A hit inside one longer word stays (the collision
    sweep, tests/test_lexicon_collisions.py, reviews everyday words that hold a sexual or
    undressing term), and a listed phrase cuts no other hit (上半身裸|の: bare-chested)."""
    if not found:
        return found
    terms = {hit.term for hit in found}
    read = [(start, end) for start, end in words.likeliest_words(text, language, terms)
            if text[start:end] not in terms]
    return [hit for hit in found if not any(
        start < hit.end and hit.start < end  # overlaps the hit
        and not (hit.start <= start and end <= hit.end)  # is not inside it
        and not (start <= hit.start and hit.end <= end)  # does not hold it
        for start, end in read)]


def _reading_language(code: str, languages: list[str]) -> str:
    """The language whose words a substring lexicon's hits are read among: the prompt's own
    when it is written without spaces too (the Japanese lexicon holds 少女, girl, and reads
    Chinese text, where 至少|女人 is "at least women"), else the lexicon's."""
    likeliest = languages[0] if languages else code
    return likeliest if lexicons()[likeliest].phrases is None else code


def _without_likelier_readings(found: list[Hit], likeliest: str) -> list[Hit]:
    """The hits of a less likely language, less child words used more in the likeliest one:
    Spanish "sin" (without) is Slovene and Croatian for "son", and "desvistela y dejala sin
    nada" (undress her, leave her with nothing) was reported as undressing a child. A child
    word of the likeliest language is found in its own lexicon."""
    return [hit for hit in found if hit.intent != "minor"
            or not words.commoner_in(hit.term, likeliest, than=hit.language)]


def _everyday_words_as_ambiguous(found: list[Hit], languages: list[str]) -> list[Hit]:
    """English hits in a prompt most likely in another language, with sexual and undressing
    words that are everyday words of one of its languages, about as common there as in
    English, read as ambiguous: Croatian "nude" (they offer), Romanian "pornit" (set off),
    Indonesian "toples" (a jar). "djeca nude pomoć starijima" (the children offer help to the
    elderly) was a report; now it is refused, not reported. Where such a word is sexual in that
    language too, its own lexicon reads it."""
    return [replace(hit, intent="ambiguous") if hit.intent in CROSS_LANGUAGE and any(
        words.commoner_in(hit.term, code, than=ALWAYS, margin=_LOANWORD_MARGIN)
        for code in languages) else hit for hit in found]


def _outside_partial_undress(found: list[Hit]) -> list[Hit]:
    """The hits, less sexual and undressing words inside a longer suggestive phrase of the same
    text. Such a phrase says a person is only partly undressed, and may hold the word for
    naked (French "torse nu", German "mit nacktem Oberkörper": bare-chested); read alone,
    that word would make "a bare-chested boy playing football" a report of sexual content
    with a minor. The longest listed phrase says what the words mean together."""
    phrases = [(hit.start, hit.end) for hit in found if hit.intent == "suggestive"]
    return [hit for hit in found if hit.intent not in CROSS_LANGUAGE or not any(
        start <= hit.start and hit.end <= end and end - start > hit.end - hit.start
        for start, end in phrases)]
