"""FaceIndex: the same answers as a brute-force search, removals that hold at once, and
searches that run safely while the index changes.

Embeddings are synthetic and shaped like dlib's (bench/face_index.py describes the model): a
shared mean of norm 1.31, identities spread over a few dominant directions, photos of one
identity about 0.36 apart, of different identities about 0.8. The capacities are shrunk so
that a few hundred vectors already make several segments, merges and compactions, and the
first round of candidates is 2 per result asked for, so that searches often need a second
round.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import waakhond.consent.index as face_index
from waakhond.consent.index import FaceIndex

DIMENSIONS = 128
RADII = (0.3, 0.5, 0.6, 3.0)


class Faces:
    """Identity centres and photos of them, with per-direction spreads falling as 1/i."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        mean = self.rng.standard_normal(DIMENSIONS)
        self.mean = mean / np.linalg.norm(mean) * 1.31
        spread = 1 / np.arange(1, DIMENSIONS + 1)
        self.identity_axes = self._axes(spread * 0.293 / spread.sum())
        self.photo_axes = self._axes(spread * 0.068 / spread.sum())

    def _axes(self, variances: np.ndarray) -> np.ndarray:
        basis = np.linalg.qr(self.rng.standard_normal((DIMENSIONS, DIMENSIONS)))[0]
        return basis * np.sqrt(variances)

    def identities(self, n: int) -> np.ndarray:
        return self.mean + self.rng.standard_normal((n, DIMENSIONS)) @ self.identity_axes.T

    def photos(self, centres: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(centres.shape) @ self.photo_axes.T
        return (centres + noise).astype(np.float32)


def brute_force(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray,
                radius: float, k: int) -> list[list[tuple[int, float]]]:
    answers = []
    for query in queries.astype(np.float64):
        distances = np.linalg.norm(vectors.astype(np.float64) - query, axis=1)
        order = [row for row in np.lexsort((ids, distances)) if distances[row] < radius][:k]
        answers.append([(int(ids[row]), float(distances[row])) for row in order])
    return answers


def assert_agrees(index: FaceIndex, live: dict[int, np.ndarray], queries: np.ndarray) -> None:
    ids = np.array(sorted(live), dtype=np.int64)
    vectors = np.array([live[i] for i in ids]).reshape(-1, DIMENSIONS)
    assert len(index) == len(ids)
    for radius in RADII:
        for k in (1, 3, 40):
            expected = brute_force(ids, vectors, queries, radius, k)
            found = index.search(queries, radius, k)
            assert [[hit[0] for hit in hits] for hits in found] == \
                [[hit[0] for hit in hits] for hits in expected]
            for hits, want in zip(found, expected, strict=True):
                assert [hit[1] for hit in hits] == pytest.approx([w[1] for w in want], abs=1e-12)


def mixed_queries(faces: Faces, centres: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """New photos of enrolled identities, strangers, stored vectors themselves, and faces far
    outside the range the codes cover."""
    picks = faces.rng.integers(0, max(len(centres), 1), 8)
    return np.concatenate([
        faces.photos(centres[picks]) if len(centres) else np.empty((0, DIMENSIONS)),
        faces.photos(faces.identities(8)),
        stored[:4],
        (faces.identities(2) * 3).astype(np.float32),
    ]).astype(np.float32)


@pytest.fixture(autouse=True)
def small_capacities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face_index, "DELTA_CAPACITY", 64)
    monkeypatch.setattr(face_index, "SEGMENT_CAPACITY", 256)
    monkeypatch.setattr(face_index, "FIRST_K", 2)
    monkeypatch.setattr(face_index, "K_GROWTH", 2)
    monkeypatch.setattr(face_index, "PARALLEL_FROM", 100)


@pytest.mark.parametrize("size", [0, 1, 40, 300, 1500])
def test_agrees_with_brute_force(size: int) -> None:
    faces = Faces(size)
    centres = faces.identities(size)
    vectors = faces.photos(centres)
    index = FaceIndex()
    # In batches of varied sizes: into the delta, sealing it, and straight into segments.
    live: dict[int, np.ndarray] = {}
    start = 0
    for batch in [1, 5, 60, 300, 2000]:
        index.add(range(start, min(start + batch, size)), vectors[start:start + batch])
        live.update(enumerate(vectors[start:start + batch], start))
        start += batch
    assert_agrees(index, live, mixed_queries(faces, centres, vectors))


def test_agrees_after_removals_and_re_adding() -> None:
    faces = Faces(7)
    centres = faces.identities(700)
    vectors = faces.photos(centres)
    index = FaceIndex()
    for start in range(0, 700, 50):
        index.add(range(start, start + 50), vectors[start:start + 50])
    live = dict(enumerate(vectors))
    queries = mixed_queries(faces, centres, vectors)
    removed = faces.rng.choice(700, 300, replace=False)  # enough to compact segments
    for chunk in np.array_split(removed, 6):
        assert index.remove(chunk.tolist()) == len(chunk)
        for i in chunk:
            del live[int(i)]
        assert_agrees(index, live, queries)
    # Ids come back with other photos; the old ones must stay gone.
    back = removed[:120]
    fresh = faces.photos(centres[back])
    index.add(back, fresh)
    live.update(zip(back.tolist(), fresh, strict=True))
    assert_agrees(index, live, np.concatenate([queries, vectors[back[:10]]]))


def test_near_copies_closer_than_the_code_grid() -> None:
    """Copies a few thousandths apart (a photo enrolled twice, re-encoded), in segments whose
    code grid an odd vector far out makes coarse: the codes rank the copies in no useful
    order, so only the rounding-error bound finds the nearest."""
    faces = Faces(9)
    centres = np.repeat(faces.identities(12), 40, axis=0)
    wobble = faces.rng.standard_normal(centres.shape) * 0.004 / np.sqrt(DIMENSIONS)
    vectors = (faces.photos(centres[::40]).repeat(40, axis=0) + wobble).astype(np.float32)
    vectors[::60] *= 3  # far beyond any face: the grid widens to cover it
    index = FaceIndex()
    for start in range(0, len(vectors), 60):
        index.add(range(start, start + 60), vectors[start:start + 60])
    assert min(segment.error for segment in index._view.segments) > 0.01  # coarse, as meant
    queries = (vectors[1::7] + wobble[1::7][::-1]).astype(np.float32)
    assert_agrees(index, dict(enumerate(vectors)), queries)


def test_removal_is_immediate() -> None:
    faces = Faces(3)
    vectors = faces.photos(faces.identities(400))
    index = FaceIndex()
    index.add(np.arange(400), vectors)
    for i in (0, 399):  # one in a segment, one in the delta
        assert index.search(vectors[i:i + 1], 0.1) == [[(i, 0.0)]]
        assert index.remove([i]) == 1
        assert i not in [hit[0] for hit in index.search(vectors[i:i + 1], 0.6, 400)[0]]
    assert index.remove([0, 399, 10_000]) == 0  # already gone or never there
    assert len(index) == 398


def test_an_id_is_added_once_until_removed() -> None:
    vectors = Faces(4).photos(Faces(4).identities(3))
    index = FaceIndex()
    index.add([1, 2], vectors[:2])
    with pytest.raises(ValueError, match="already"):
        index.add([2], vectors[2:])
    with pytest.raises(ValueError, match="twice"):
        index.add([5, 5], vectors[:2])
    index.remove([2])
    index.add([2], vectors[2:])
    assert index.search(vectors[2:], 0.1) == [[(2, 0.0)]]
    found = index.vectors([2, 1, 5])
    assert found[:2].tolist() == vectors[[2, 0]].tolist()  # 2 came back with a new vector
    assert np.isnan(found[2]).all()  # never added


def test_the_radius_is_strict() -> None:
    stored = Faces(5).photos(Faces(5).identities(1))
    query = stored.copy()
    query[0, 0] += 0.25
    distance = float(np.linalg.norm(stored.astype(np.float64) - query.astype(np.float64)))
    index = FaceIndex()
    index.add([9], stored)
    assert index.search(query, distance) == [[]]
    assert index.search(query, float(np.nextafter(distance, np.inf))) == [[(9, distance)]]
    for radius in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="radius"):
            index.search(query, radius)
    for k in (0, -1, 1.5):
        with pytest.raises(ValueError, match="k must"):
            index.search(query, 1.0, k)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ids", "vectors"), [
    ([1], np.zeros((1, 127), np.float32)),
    ([1], np.zeros(128, np.float32)),
    ([1], np.zeros((1, 1, 128), np.float32)),
    ([1, 2], np.zeros((1, 128), np.float32)),
    ([[1]], np.zeros((1, 128), np.float32)),
    ([1.5], np.zeros((1, 128), np.float32)),
    ([1], np.zeros((1, 128), np.int32)),
    ([1], np.full((1, 128), np.nan, np.float32)),
])
def test_wrong_input_is_refused(ids: list, vectors: np.ndarray) -> None:
    index = FaceIndex()
    with pytest.raises(ValueError):
        index.add(ids, vectors)
    assert len(index) == 0


@pytest.mark.parametrize("queries", [
    np.zeros(128, np.float32), np.zeros((1, 64), np.float32),
    np.full((1, 128), np.inf, np.float32),
])
def test_wrong_queries_are_refused(queries: np.ndarray) -> None:
    with pytest.raises(ValueError, match="queries"):
        FaceIndex().search(queries, 0.6)


def test_searches_during_adds_and_removals() -> None:
    """No search that starts after remove() returned finds what it removed; nothing fails."""
    faces = Faces(11)
    vectors = faces.photos(faces.identities(3000))
    index = FaceIndex()
    index.add(np.arange(1000), vectors[:1000])
    removed: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def search() -> None:
        rng = np.random.default_rng(0)
        try:
            while not done.is_set():
                gone = set(removed)  # removed before this search starts
                picks = rng.integers(0, 3000, 5)
                for hits in index.search(vectors[picks], 0.6, 8):
                    assert not gone & {hit[0] for hit in hits}
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    searchers = [threading.Thread(target=search) for _ in range(3)]
    for thread in searchers:
        thread.start()
    deadline = time.monotonic() + 1.5
    next_id = 1000
    while time.monotonic() < deadline and next_id < 3000:
        index.add(np.arange(next_id, next_id + 20), vectors[next_id:next_id + 20])
        next_id += 20
        victims = np.arange(next_id - 40, next_id - 25).tolist()
        index.remove(victims)
        removed.extend(victims)
    done.set()
    for thread in searchers:
        thread.join()
    assert not failures, failures[0]
    assert len(index) == next_id - len(set(removed))
