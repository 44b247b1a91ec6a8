"""Is a word an everyday word of a language? Word frequencies from the ``wordfreq`` package
(Wikipedia, subtitles, news, books, web text and more, for 40 languages; data inside the
wheel, offline), used to keep fuzzy and cross-language keyword matches from firing on real
words: a misspelling guard needs a dictionary, and writing our own for 35 languages would
be neither complete nor kept up to date.

The lists are read with wordfreq's own reader and tokenizer but held here, compactly:
wordfreq keeps each list it has read as Python strings, twice, for the life of the process,
about 900 MiB once a gateway has seen prompts in our 31 listed languages. Here a word costs
10 bytes (its hash and its frequency).
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterable, Sequence
from functools import cache

import msgpack
import numpy as np
from wordfreq import available_languages, freq_to_zipf, lossy_tokenize, read_cBpack, top_n_list
from wordfreq.numbers import digit_freq, smash_numbers
from wordfreq.util import data_path

# Zipf 3 = once in a million words; "ripples" is 3.0, "nuda" in English 1.6.
COMMON_ZIPF = 2.5
_LIST = "best"
# Chinese, Japanese and Korean lists need word segmenters (jieba, MeCab) that we do not ship;
# words in those scripts never collide with the Latin-script words this guard is asked about.
# Irish, Estonian and Maltese have no list: misspellings are not read in prompts that may be
# in them (lexicon.match).
_SEGMENTED = frozenset({"zh", "ja", "ko"})
# The index of the rarest frequency list kept for the guard (Zipf 2.4, under COMMON_ZIPF so
# that rounding cannot move a word across it): wordfreq lists Zipf 9 - i/100 at index i.
_RAREST_KEPT = round((9 - (COMMON_ZIPF - 0.1)) * 100) + 1
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


def read(languages: Iterable[str]) -> None:
    """Read the word lists of ``languages`` now rather than when a prompt first needs them."""
    for language in languages:
        code = _ALIASES.get(language, language)
        if code in available_languages(_LIST):
            _frequencies(code)


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
    """wordfreq's ``zipf_frequency``, over the compact list: the word split into tokens as
    wordfreq splits it, digits folded, and the tokens' frequencies combined as wordfreq
    combines them (1/f = 1/f1 + 1/f2 ...; a token not listed makes the word unlisted)."""
    if not listed(language):
        return 0.0
    code = _ALIASES.get(language, language)
    tokens = lossy_tokenize(word, code)
    folded = [smash_numbers(token) for token in tokens]
    found = _frequencies(code).of(folded)
    if not tokens or not found.all():
        return 0.0
    inverse = sum(1.0 / (float(f) * (digit_freq(token) if fold != token else 1.0))
                  for f, fold, token in zip(found, folded, tokens, strict=True))
    return max(round(freq_to_zipf(_three_figures(1.0 / inverse)), 2), 0.0)


def _three_figures(frequency: float) -> float:
    """Rounded as wordfreq rounds (its data is precise to about 1%), so that a word on the
    everyday threshold falls on the same side of it."""
    return round(frequency, math.floor(-math.log10(frequency)) + 3)


class _Frequencies:
    """One language's word list: each word's hash, sorted, and its frequency in centibels
    (wordfreq's unit: -100 cB is a tenth). The hash is Python's, fixed for the life of the
    process, of the word's UTF-8 bytes: a str hashes its internal bytes, which a one-byte and a
    two-byte string can share ("c0" and "っ" do)."""

    def __init__(self, buckets: list[list[str]]) -> None:
        # wordfreq's format: the list at index i holds the words of frequency -i centibels.
        hashes = np.fromiter((_hash(w) for bucket in buckets for w in bucket), dtype=np.int64)
        centibels = np.fromiter((-i for i, bucket in enumerate(buckets) for _ in bucket),
                                dtype=np.int16, count=len(hashes))
        # A word listed twice keeps its last, rarest frequency, as in wordfreq's own lookups.
        order = np.lexsort((centibels, hashes))
        hashes, centibels = hashes[order], centibels[order]
        first = np.r_[True, hashes[1:] != hashes[:-1]]
        self._hashes, self._centibels = hashes[first], centibels[first]

    def of(self, words: Sequence[str]) -> np.ndarray:
        """Each word's frequency, 0.0 for a word not listed."""
        wanted = np.fromiter((_hash(w) for w in words), dtype=np.int64, count=len(words))
        at = np.minimum(np.searchsorted(self._hashes, wanted), len(self._hashes) - 1)
        return np.where(self._hashes[at] == wanted, 10.0 ** (self._centibels[at] / 100), 0.0)


def _hash(word: str) -> int:
    return hash(word.encode("utf-8"))


@cache
def _frequencies(code: str) -> _Frequencies:
    buckets = read_cBpack(available_languages(_LIST)[code])
    # Only everyday words matter to the guard: a rarer word reads as unlisted (Zipf 0), which
    # decides ``common`` and ``commoner_in`` as its true frequency would. Reading text into
    # words (Chinese, Japanese, Korean) weighs rare words too.
    return _Frequencies(buckets if code in _SEGMENTED else buckets[:_RAREST_KEPT])


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
    listed = _frequencies(_ALIASES.get(language, language))
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


def _read(run: str, listed: _Frequencies, extra: dict[str, float]) -> list[tuple[int, int]]:
    """cost[end] is the least -log probability of reading run[:end] as words."""
    spans = [(start, end) for end in range(1, len(run) + 1)
             for start in range(max(0, end - _LONGEST_WORD), end)]
    pieces = [run[start:end] for start, end in spans]
    chances = listed.of(pieces)  # every piece's frequency looked up at once
    cost = [0.0] + [math.inf] * len(run)
    start_of = [0] * (len(run) + 1)
    for (start, end), piece, chance in zip(spans, pieces, chances.tolist(), strict=True):
        p = max(chance, extra.get(piece, 0.0))
        if not p and end - start == 1:
            p = _UNLISTED_CHARACTER
        if p and (through := cost[start] - math.log(p)) < cost[end]:
            cost[end], start_of[end] = through, start
    found, end = [], len(run)
    while end:
        found.append((start_of[end], end))
        end = start_of[end]
    return found[::-1]
