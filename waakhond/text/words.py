"""Is a word an everyday word of a language? Word frequencies from the ``wordfreq`` package
(Wikipedia, subtitles, news, books, web text and more, for 40 languages; data inside the
wheel, offline), used to keep fuzzy and cross-language keyword matches from firing on real
words: a misspelling guard needs a dictionary, and writing our own for 35 languages would
be neither complete nor kept up to date.
"""

from __future__ import annotations

from functools import cache

from wordfreq import available_languages, top_n_list, zipf_frequency

# Zipf 3 = once in a million words; "ripples" is 3.0, "nuda" in English 1.6.
COMMON_ZIPF = 2.5
_LIST = "best"
# Chinese, Japanese and Korean lists need word segmenters (jieba, MeCab) that we do not ship;
# words in those scripts never collide with the Latin-script words this guard is asked about.
# Irish, Estonian and Maltese have no list: misspellings are not read in prompts that may be
# in them (lexicon.match).
_SEGMENTED = frozenset({"zh", "ja", "ko"})
# Our codes that wordfreq files under another name: Croatian is in its Serbo-Croatian list.
_ALIASES = {"hr": "sh"}


@cache
def _known() -> frozenset[str]:
    return frozenset(available_languages(_LIST)) - _SEGMENTED


def listed(language: str) -> bool:
    """Whether there is a word list for ``language``."""
    return _ALIASES.get(language, language) in _known()


def commonest(language: str, n: int) -> list[str]:
    """The ``n`` commonest words of ``language``, most common first (none without a list).
    Unlike ``listed``, Chinese, Japanese and Korean have lists here: ranking needs no
    segmenter."""
    code = _ALIASES.get(language, language)
    return top_n_list(code, n, wordlist=_LIST) if code in available_languages(_LIST) else []


def common(word: str, languages: list[str]) -> bool:
    """Whether ``word`` is at least an occasional word in any of ``languages``."""
    return any(_zipf(word, code) >= COMMON_ZIPF for code in dict.fromkeys(languages))


def commoner_in(word: str, language: str, than: str, margin: float = 0.0) -> bool:
    """Whether ``word`` is an everyday word of ``language`` and more frequent there than in
    ``than`` (a language without a list counts as never using it), or less frequent by at
    most ``margin`` Zipf points."""
    here = _zipf(word, language)
    return here >= COMMON_ZIPF and here > _zipf(word, than) - margin


def _zipf(word: str, language: str) -> float:
    if not listed(language):
        return 0.0
    return zipf_frequency(word, _ALIASES.get(language, language), wordlist=_LIST)
