"""Is a word an everyday word of a language? Word frequencies from the ``wordfreq`` package
(Wikipedia, subtitles, news, books, web text and more, for 40 languages; data inside the
wheel, offline), used to keep fuzzy and cross-language keyword matches from firing on real
words: a misspelling guard needs a dictionary, and writing our own for 35 languages would
be neither complete nor kept up to date.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterable
from functools import cache

import msgpack
from wordfreq import available_languages, get_frequency_dict, top_n_list, zipf_frequency
from wordfreq.util import data_path

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


# A character that no listed word explains reads as a word this rare (Zipf 1, wordfreq's floor).
_UNLISTED_CHARACTER = 1e-8
_LONGEST_WORD = 12
_RUN = re.compile(r"\w+")


def likeliest_words(text: str, language: str, candidates: Iterable[str] = (),
                    candidate_frequency: float = 1e-6) -> list[tuple[int, int]]:
    """The likeliest reading of ``text`` as words of ``language``, for languages written
    without spaces between words: each word's (start, end) offsets. Each run of word
    characters is read as the sequence of listed words with the highest product of their
    frequencies (a unigram model over wordfreq's list, Viterbi); ``candidates`` (a lexicon's
    terms found in the text) count as words at least ``candidate_frequency`` frequent.
    Chinese "流行性感冒" (influenza) reads as 流行性|感冒; traditional characters are read as
    their simplified forms, as the list has them."""
    listed = get_frequency_dict(_ALIASES.get(language, language), wordlist=_LIST)
    if language == "zh":  # one character for one: the offsets stay those of the text
        text, candidates = text.translate(_simplified()), [c.translate(_simplified())
                                                           for c in candidates]
    extra = dict.fromkeys(candidates, candidate_frequency)
    return [(run.start() + start, run.start() + end)
            for run in _RUN.finditer(text) for start, end in _read(run.group(), listed, extra)]


@cache
def _simplified() -> dict[int, str]:
    """wordfreq's table of traditional Chinese characters and their simplified forms (the
    package reads it only together with its jieba segmenter, which we do not ship)."""
    with gzip.open(data_path("_chinese_mapping.msgpack.gz")) as table:
        return msgpack.load(table, raw=False, strict_map_key=False)


def _read(run: str, listed: dict[str, float], extra: dict[str, float]) -> list[tuple[int, int]]:
    """cost[end] is the least -log probability of reading run[:end] as words."""
    cost = [0.0] + [math.inf] * len(run)
    start_of = [0] * (len(run) + 1)
    for end in range(1, len(run) + 1):
        for start in range(max(0, end - _LONGEST_WORD), end):
            word = run[start:end]
            p = max(listed.get(word, 0.0), extra.get(word, 0.0))
            if not p and end - start == 1:
                p = _UNLISTED_CHARACTER
            if p and cost[start] - math.log(p) < cost[end]:
                cost[end], start_of[end] = cost[start] - math.log(p), start
    found, end = [], len(run)
    while end:
        found.append((start_of[end], end))
        end = start_of[end]
    return found[::-1]
