"""Undo the tricks people use to slip a prompt past a keyword filter.

``views(text)`` returns the prompt as it was typed (NFKC, lower case, invisible characters
removed) and a de-obfuscated view (look-alike letters folded, leetspeak read, spaced or dotted
letters joined, stretched letters squeezed, emoji spelled out). Lexicons match on both, so
an obfuscation can only add matches, never hide one.

Why hand-written rather than a library: the confusables data we need is a few dozen letters
(Cyrillic and Greek look-alikes of Latin ones), and folding must stay inside mixed-script words
so that real Russian or Greek prompts are left alone; general confusable-skeleton libraries
fold every word and would break those languages' lexicons.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width characters, bidi controls, soft hyphens, variation selectors and other
# invisible code points that split words for a filter but not for a reader.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)

# Arabic short-vowel signs, shadda and the tatweel stretch: usually left unwritten, so the
# lexicons hold words without them; written in ("عرّي"), they hid the word.
_ARABIC_MARKS = re.compile("[\u0640\u064b-\u065f\u0670]")

# Cyrillic and Greek letters that look like Latin ones (lower case, after casefold).
_LOOKALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w",
})
_LATIN = re.compile(r"[a-z]")
_NON_LATIN_LETTER = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f]")

# Digits and symbols read as letters, only inside words that also contain real letters.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_LEET_CHARS = set("013457 8@$!|+".replace(" ", ""))
_WORD = re.compile(r"\S+")

# Three or more single characters joined by spaces, dots, dashes, underscores or stars:
# "n u d e", "n.u.d.e", "n-a-k-e-d".
_SPACED = re.compile(r"(?<!\w)(?:\w[\s.\-_*·•]{1,3}){2,}\w(?!\w)")
_SEPARATORS = re.compile(r"[\s.\-_*·•]+")
# A letter repeated three or more times: "nuuuude", "nakeddd".
_STRETCHED = re.compile(r"(\w)\1{2,}")

# Emoji used as stand-ins, spelled as words the English lexicon knows.
_EMOJI_WORDS = {
    "🍑": "ass", "🍆": "penis", "💦": "wet", "👙": "bikini", "🩱": "swimsuit", "🩲": "underwear",
    "👅": "tongue", "💋": "kiss", "🔞": "nsfw", "🫦": "lips", "🍒": "breasts", "🥵": "sexy",
    "👶": "baby", "🧒": "child", "👧": "girl", "👦": "boy", "🎒": "school", "🏫": "school",
    "🚸": "children", "🍼": "baby",
}
_EMOJI = re.compile("|".join(map(re.escape, _EMOJI_WORDS)))


# A right-to-left override (U+202E) up to its pop (U+202C) or the end: shown reversed.
_OVERRIDE = re.compile("\u202e([^\u202c]*)\u202c?")


def clean(text: str) -> str:
    """NFKC (folds fullwidth and styled letters), lower case, invisible characters and Arabic
    vowel signs removed, whitespace collapsed."""
    return " ".join(_unmarked(text).split())


def _unmarked(text: str) -> str:
    """``clean`` but with the spacing as typed: a wider gap in spaced letters ends a word."""
    text = unicodedata.normalize("NFKC", text)
    return _ARABIC_MARKS.sub("", _INVISIBLE.sub("", text)).casefold()


def deobfuscate(unmarked: str) -> str:
    """The text with obfuscations undone (see the module docstring), whitespace collapsed."""
    text = _EMOJI.sub(lambda m: f" {_EMOJI_WORDS[m.group()]} ", unmarked)
    text = _WORD.sub(lambda m: _fold_word(m.group()), text)
    text = _SPACED.sub(lambda m: _join_letters(m.group()), text)
    text = _STRETCHED.sub(r"\1", text)
    return " ".join(text.split())


def views(text: str) -> tuple[str, str]:
    """(as typed, de-obfuscated): both lower case, both free of invisible characters. The
    de-obfuscated view reads text under a right-to-left override as it is displayed, the typed
    view as it was typed, so reversing a word hides it from neither."""
    displayed = _OVERRIDE.sub(lambda m: m.group(1)[::-1], text)
    return clean(text), deobfuscate(_unmarked(displayed))


def _join_letters(run: str) -> str:
    """Spaced or dotted letters joined into words. A gap with more whitespace than the
    narrowest gap of the run ends a word: "f e m m e   n u e" is "femme nue" and
    "g.o.l.a ž.e.n.a" is "gola žena" (joined whole, neither word was found)."""
    gaps = _SEPARATORS.findall(run)
    narrowest = min(_whitespace(gap) for gap in gaps)
    letters = _SEPARATORS.split(run)
    return letters[0] + "".join(
        (" " if _whitespace(gap) > narrowest else "") + letter
        for gap, letter in zip(gaps, letters[1:], strict=True))


def _whitespace(gap: str) -> int:
    return sum(c.isspace() for c in gap)


def _fold_word(word: str) -> str:
    # Look-alike letters are folded only in words that mix scripts: a real Cyrillic word
    # ("раздень") stays Cyrillic, a Latin word with one Cyrillic "а" ("nаked") becomes Latin.
    if _LATIN.search(word) and _NON_LATIN_LETTER.search(word):
        word = word.translate(_LOOKALIKES)
    has_letter = any(c.isalpha() for c in word)
    if has_letter and any(c in _LEET_CHARS for c in word) and not word.isdigit():
        word = word.translate(_LEET)
    return word
