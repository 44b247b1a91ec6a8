"""The pages' languages. Each language is one JSON catalogue in ``locales/`` (key -> text with
``{name}`` placeholders). Plain JSON rather than gettext: five small catalogues that
translators can edit without a compile step, and a test checks every key is in every one.

The language is the ``lang`` query parameter (remembered in a cookie), else the cookie, else
the browser's Accept-Language, else English. A missing text falls back to English."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import Request

LANGUAGES = {"en": "English", "nl": "Nederlands", "fr": "Français", "de": "Deutsch",
             "es": "Español"}
DEFAULT = "en"
COOKIE = "lang"
_LOCALES = Path(__file__).parent / "locales"


@cache
def catalogue(language: str) -> dict[str, str]:
    return json.loads((_LOCALES / f"{language}.json").read_text(encoding="utf-8"))


def choose_language(request: Request) -> str:
    for candidate in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return _from_accept_language(request.headers.get("accept-language", ""))


def _from_accept_language(header: str) -> str:
    """The browser's most preferred language we have (``nl-BE,nl;q=0.9,en;q=0.8`` -> nl)."""
    ranked = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, position, tag.split("-")[0].lower()))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return DEFAULT


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language
        self._texts = catalogue(language)

    def __call__(self, key: str, **values: object) -> str:
        text = self._texts.get(key) or catalogue(DEFAULT)[key]
        return text.format(**values) if values else text
