"""The pages' language catalogues and the choice of language, without HTTP."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from waakhond.web import i18n
from waakhond.web.i18n import DEFAULT, LANGUAGES, Translator, _from_accept_language

LOCALES = Path(i18n.__file__).parent / "locales"
TRANSLATIONS = sorted(set(LANGUAGES) - {DEFAULT})


def _load(language: str) -> dict[str, str]:
    return json.loads((LOCALES / f"{language}.json").read_text(encoding="utf-8"))


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


ENGLISH = _load(DEFAULT)


def test_every_language_has_a_catalogue():
    assert {path.stem for path in LOCALES.glob("*.json")} == set(LANGUAGES)


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_a_catalogue_has_exactly_the_english_keys(language):
    texts = _load(language)
    assert sorted(set(ENGLISH) - set(texts)) == [], "missing"
    assert sorted(set(texts) - set(ENGLISH)) == [], "not in en.json"


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_a_translation_keeps_the_placeholders(language):
    texts = _load(language)
    wrong = {key: (sorted(_placeholders(ENGLISH[key])), sorted(_placeholders(text)))
             for key, text in texts.items()
             if key in ENGLISH and _placeholders(text) != _placeholders(ENGLISH[key])}
    assert wrong == {}


@pytest.mark.parametrize("language", [*TRANSLATIONS, DEFAULT])
def test_no_text_is_empty(language):
    texts = _load(language)
    assert all(isinstance(text, str) for text in texts.values())
    assert [key for key, text in texts.items() if not text.strip()] == []


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_every_text_formats_with_its_placeholders(language):
    translate = Translator(language)
    for key, text in ENGLISH.items():
        names = _placeholders(text)
        if names:
            assert "{" not in translate(key, **dict.fromkeys(names, "X"))


@pytest.mark.parametrize(("header", "language"), [
    ("nl-BE,nl;q=0.9,en;q=0.8", "nl"),
    ("de-CH;q=0.5, fr;q=0.7", "fr"),
    ("ES-mx", "es"),
    ("ja,zh-CN;q=0.9", "en"),
    ("", "en"),
    ("fr;q=abc, de;q=0.4", "de"),
])
def test_the_browser_language(header, language):
    assert _from_accept_language(header) == language


def test_a_missing_text_falls_back_to_english(monkeypatch):
    fake = {"en": {"only.english": "Hello {name}", "both": "English"},
            "nl": {"both": "Nederlands", "only.english": ""}}
    monkeypatch.setattr(i18n, "catalogue", fake.__getitem__)
    translate = Translator("nl")
    assert translate("both") == "Nederlands"
    assert translate("only.english", name="Ada") == "Hello Ada"
    del fake["nl"]["only.english"]
    assert translate("only.english", name="Ada") == "Hello Ada"
