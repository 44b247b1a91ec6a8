"""Everyday words must not read as sexual: a collision sweep over each language's commonest words.

Next to a child word, a word read as sexual or undressing makes a harmless prompt a report of
sexual content of a minor: Romanian "pornit" (set off) once matched the English stem "porn*",
so "copiii au pornit spre școală" (the children set off to school) was reported. This test
reads each language's 20,000 commonest words (wordfreq) through the lexicons and the benign
phrases, as in a prompt in that language, and fails on any word read as sexual or undressing
that has not been reviewed as meaning that (tests/data/common_sexual_words.yaml). A new
lexicon term that collides with an everyday word fails here until it is narrowed, or the word
is made a benign phrase.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from waakhond.signals.prompt import keyword_hits
from waakhond.text import words
from waakhond.text.lexicon import LEXICON_DIR, lexicons
from waakhond.text.normalise import views

REVIEWED = Path(__file__).with_name("data") / "common_sexual_words.yaml"
SWEPT = 20_000
HARMS = ("sexual", "undress")


def _reviewed() -> dict[str, list[str]]:
    return yaml.safe_load(REVIEWED.read_text("utf-8"))


def _swept_languages() -> list[str]:
    return [code for code in sorted(lexicons()) if words.commonest(code, 1)]


def test_every_language_with_a_word_list_is_reviewed():
    assert set(_reviewed()) == set(_swept_languages())


@pytest.mark.parametrize("language", _swept_languages())
def test_only_reviewed_common_words_read_as_sexual(language):
    reviewed = set(_reviewed()[language] or ())
    read = [word for word in words.commonest(language, SWEPT)
            if any(hit.intent in HARMS for hit in keyword_hits(*views(word), [language]))]
    assert set(read) <= reviewed, sorted(set(read) - reviewed)


# Chinese, Japanese and Korean are matched inside running text, so two everyday words side by
# side can hold a keyword across their boundary: 처음|부터 (from the start) holds 음부, 至少|女人
# (at least the women) holds 少女 (a girl). The lexicon reads such text against the likeliest
# reading into words; this sweep joins each two of a language's commonest words where a term
# spans the join, and fails on any join read as sexual, undressing or a minor that is not
# reviewed (tests/data/common_joined_words.yaml: the term may well be meant, as in 小|学生,
# a primary pupil).
JOINED = 2_000
REVIEWED_JOINS = Path(__file__).with_name("data") / "common_joined_words.yaml"
JOIN_HARMS = (*HARMS, "minor")
WITHOUT_SPACES = ("ja", "ko", "zh")


def _joins_across_a_term(language: str) -> set[str]:
    """Each two common words joined where a listed term begins in the first and ends in the
    second, neither read as a keyword alone, and the two not just the term's own halves."""
    terms = yaml.safe_load((LEXICON_DIR / f"{language}.yaml").read_text("utf-8"))["terms"]
    common = [word for word in words.commonest(language, JOINED)
              if not _read_as_harm(word, language)]
    ending, starting = defaultdict(list), defaultdict(list)
    for word in common:
        for n in range(1, len(word) + 1):
            ending[word[-n:]].append(word)
            starting[word[:n]].append(word)
    spanned = {term.strip("*") for intent in JOIN_HARMS for term in terms.get(intent) or []
               if " " not in term}
    return {first + second
            for term in spanned for cut in range(1, len(term))
            for first in ending[term[:cut]] for second in starting[term[cut:]]
            if (first, second) != (term[:cut], term[cut:])}


def _read_as_harm(text: str, language: str) -> bool:
    return any(hit.intent in JOIN_HARMS for hit in keyword_hits(*views(text), [language]))


@pytest.mark.parametrize("language", WITHOUT_SPACES)
def test_only_reviewed_joins_of_common_words_read_as_a_keyword_across_the_join(language):
    reviewed = set(yaml.safe_load(REVIEWED_JOINS.read_text("utf-8"))[language] or ())
    read = {joined for joined in _joins_across_a_term(language)
            if _read_as_harm(joined, language)}
    assert read <= reviewed, sorted(read - reviewed)
