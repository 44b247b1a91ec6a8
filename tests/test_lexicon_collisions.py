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

from pathlib import Path

import pytest
import yaml

from waakhond.signals.prompt import keyword_hits
from waakhond.text import words
from waakhond.text.lexicon import lexicons
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
