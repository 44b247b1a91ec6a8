"""An exact nearest-face index for the consent registry, fast at a million embeddings.

A lookup asks: which k enrolled embeddings are nearest to this face, of those nearer than a
radius? The answer is exact (the same as comparing with every stored float32 vector) in two
stages:
1. a scan of 8-bit codes of every vector (faiss ``QT_8bit_direct``: a quarter of the bytes of
   float32, compared as bytes with SIMD) finds the nearest codes. A code is
   ``round((x - offset) / scale)`` with one scale for all dimensions, so the distance between
   the codes of a query and a vector is a Euclidean distance, off by at most the rounding
   errors of the two (the vectors' largest is measured when a segment is built; the query's
   is computed for each search);
2. those candidates are re-ranked on their float32 vectors. Every vector beyond them is at
   least ``last code distance - rounding errors`` away; when that does not rule them all out,
   the query asks again for more candidates.

Layout, so that adds and removals take effect at once and searches never take a lock:
- immutable *segments* (ids sorted, float32 vectors, codes) of up to SEGMENT_CAPACITY vectors,
  searched in parallel across the cores (faiss releases the GIL);
- a small *delta* of recent additions, searched by brute force;
- a *dead* mask per part: removal marks it in place, so every later search skips the vector.
Writers (add, remove) hold a lock and publish a new immutable view; a search reads the current
view once. Segments whose share of dead vectors grows past DEAD_SHARE_TO_COMPACT are rebuilt.

Why this structure: docs/benchmarks.md, "Face registry index (issue 7)", has the alternatives
measured (numpy and faiss brute force, float16, IVF, HNSW, a triangle-inequality prefilter).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faiss
import numpy as np

from waakhond.signals.identity import DIMENSIONS

DELTA_CAPACITY = 8_192
SEGMENT_CAPACITY = 262_144
DEAD_SHARE_TO_COMPACT = 0.25
# Below this many vectors a search runs in the calling thread: handing work to another
# thread costs more than it saves.
PARALLEL_FROM = 65_536
# Candidates re-ranked per query and segment at first: FIRST_K per result asked for, far more
# than the vectors that usually lie within the rounding errors (about 0.02) of the k-th
# nearest, so that one scan of the codes mostly suffices (a second one costs as much again).
FIRST_K = 8
K_GROWTH = 8
# Float rounding: code distances are exact integers, the delta's float64 dot products are
# within 1e-6; this is a wide margin on top.
SLACK = 1e-4
_ENCODE_ROWS = 65_536  # rows encoded at a time, to bound the float64 temporaries
_CORES = os.cpu_count() or 1

Hit = tuple[int, float]  # (embedding id, distance)
Hits = list[Hit]  # nearest first; ties go to the lower id


def _exact(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The reference distance: float64 Euclidean distance between the float32 values."""
    return np.sqrt(((vectors.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1))


def _nearest(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray,
             radius: float, k: int) -> Hits:
    """The k nearest of these rows closer than the radius."""
    distances = _exact(vectors, query)
    below = np.flatnonzero(distances < radius)
    return _first([(int(ids[row]), float(distances[row])) for row in below], k)


def _first(hits: Hits, k: int) -> Hits:
    return sorted(hits, key=lambda hit: (hit[1], hit[0]))[:k]


@dataclass(frozen=True, eq=False)
class _Grid:
    """The 8-bit grid of a segment: one scale for all dimensions keeps distances Euclidean."""

    offset: np.ndarray  # float64, per dimension
    scale: float

    @classmethod
    def spanning(cls, vectors: np.ndarray) -> _Grid:
        offset = vectors.min(axis=0).astype(np.float64)
        span = float((vectors.max(axis=0) - offset).max())
        return cls(offset, span / 255 if span > 0 else 1.0)

    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (whole numbers 0..255 as float32, what faiss stores as they are; it would
        truncate and wrap anything else) and each vector's distance to its code."""
        levels = np.clip(np.rint((vectors - self.offset) / self.scale), 0, 255)
        errors = np.sqrt(((self.offset + levels * self.scale - vectors) ** 2).sum(axis=1))
        return levels.astype(np.float32), errors


@dataclass(frozen=True, eq=False)
class _Segment:
    ids: np.ndarray  # int64, ascending
    vectors: np.ndarray  # (n, 128) float32, in id order
    dead: np.ndarray  # bool, set in place by remove()
    codes: faiss.IndexScalarQuantizer
    grid: _Grid
    error: float  # the largest distance between a vector and its code

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray) -> _Segment:
        order = np.argsort(ids)
        ids, vectors = ids[order], vectors[order]
        grid = _Grid.spanning(vectors)
        codes = faiss.IndexScalarQuantizer(DIMENSIONS, faiss.ScalarQuantizer.QT_8bit_direct)
        error = 0.0
        for start in range(0, len(ids), _ENCODE_ROWS):
            levels, errors = grid.encode(vectors[start:start + _ENCODE_ROWS])
            codes.add(levels)
            error = max(error, float(errors.max()))
        return cls(ids, vectors, np.zeros(len(ids), bool), codes, grid, error)

    def __len__(self) -> int:
        return len(self.ids)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        keep = ~self.dead
        return self.ids[keep], self.vectors[keep]

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: its row (meaningless where absent), and whether it is here alive."""
        rows = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return rows, (self.ids[rows] == ids) & ~self.dead[rows]

    def stored(self, rows: np.ndarray) -> np.ndarray:
        return self.vectors[rows]

    def nearest(self, queries: np.ndarray, radius: float, k: int) -> list[Hits]:
        levels, errors = self.grid.encode(queries)
        return [self._nearest_one(query, level, self.error + error + SLACK, radius, k)
                for query, level, error in zip(queries, levels, errors, strict=True)]

    def _nearest_one(self, query: np.ndarray, level: np.ndarray, error: float,
                     radius: float, k: int) -> Hits:
        """`error` bounds how far a code distance is from the true distance."""
        candidates = min(FIRST_K * k, len(self))
        while True:
            squared, rows = self.codes.search(level[None, :], candidates)
            approx = self.grid.scale * np.sqrt(squared[0].astype(np.float64))
            rows = rows[0][approx < radius + error]
            rows = rows[~self.dead[rows]]
            hits = _nearest(self.ids[rows], self.vectors[rows], query, radius, k)
            # Every vector beyond the last candidate is at least this far: far enough?
            unseen = approx[-1] - error if candidates < len(self) else np.inf
            if unseen >= radius or (len(hits) == k and unseen > hits[-1][1]):
                return hits
            candidates = min(candidates * K_GROWTH, len(self))


@dataclass(eq=False)
class _Delta:
    """Recent additions, written in place past the end that published views see."""

    ids: np.ndarray = field(default_factory=lambda: np.empty(DELTA_CAPACITY, np.int64))
    # float64, so that dot products give distances within 1e-6 (float32: 1e-3 near 0).
    vectors: np.ndarray = field(
        default_factory=lambda: np.empty((DELTA_CAPACITY, DIMENSIONS), np.float64))
    squared_norms: np.ndarray = field(default_factory=lambda: np.empty(DELTA_CAPACITY))
    dead: np.ndarray = field(default_factory=lambda: np.zeros(DELTA_CAPACITY, bool))

    def write(self, start: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        end = start + len(ids)
        self.ids[start:end] = ids
        self.vectors[start:end] = vectors
        self.squared_norms[start:end] = (self.vectors[start:end] ** 2).sum(axis=1)


@dataclass(frozen=True, eq=False)
class _Prefix:
    """The rows of the delta that a view sees."""

    delta: _Delta
    size: int

    def __len__(self) -> int:
        return self.size

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        keep = np.flatnonzero(~self.dead)
        return self.delta.ids[keep], self.delta.vectors[keep].astype(np.float32)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: its row (meaningless where absent), and whether it is here alive."""
        live_rows = np.flatnonzero(~self.dead)  # an id may also be here dead, from before
        if len(live_rows) == 0:
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        live_ids = self.ids[live_rows]
        order = np.argsort(live_ids)
        at = np.minimum(np.searchsorted(live_ids, ids, sorter=order), len(order) - 1)
        rows = live_rows[order[at]]
        return rows, self.ids[rows] == ids

    def stored(self, rows: np.ndarray) -> np.ndarray:
        return self.delta.vectors[rows].astype(np.float32)

    @property
    def ids(self) -> np.ndarray:
        return self.delta.ids[: self.size]

    @property
    def dead(self) -> np.ndarray:
        return self.delta.dead[: self.size]

    def nearest(self, queries: np.ndarray, radius: float, k: int) -> list[Hits]:
        if self.dead.all():  # also when empty
            return [[] for _ in queries]
        ids, vectors = self.ids, self.delta.vectors[: self.size]
        queries64 = queries.astype(np.float64)
        squared = (self.delta.squared_norms[: self.size, None] - 2 * (vectors @ queries64.T)
                   + (queries64**2).sum(axis=1))
        approx = np.sqrt(np.maximum(squared, 0))
        approx[self.dead] = np.inf
        found = []
        kth = min(k, self.size) - 1
        for column, query in enumerate(queries):
            near = approx[:, column]
            # Re-rank only what could be among the k nearest within the radius: each of those
            # is within SLACK of its true distance, which is at most the k-th approximate + SLACK.
            limit = min(float(np.partition(near, kth)[kth]), radius) + 2 * SLACK
            rows = np.flatnonzero(near <= limit)
            found.append(_nearest(ids[rows], vectors[rows], query, radius, k))
        return found


@dataclass(frozen=True, eq=False)
class _View:
    segments: tuple[_Segment, ...]
    delta: _Prefix

    def parts(self) -> list[_Segment | _Prefix]:
        return [*self.segments, self.delta] if len(self.delta) else list(self.segments)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(_CORES - 1, 1), thread_name_prefix="face-index")


def _groups(view: _View) -> list[list[_Segment | _Prefix]]:
    """The parts dealt into one group per core, of about equal numbers of vectors."""
    parts = view.parts()
    if _CORES == 1 or sum(len(part) for part in parts) < PARALLEL_FROM:
        return [parts]
    groups: list[list[_Segment | _Prefix]] = [[] for _ in range(_CORES)]
    loads = [0] * _CORES
    for part in sorted(parts, key=len, reverse=True):
        lightest = loads.index(min(loads))
        groups[lightest].append(part)
        loads[lightest] += len(part)
    return [group for group in groups if group]


def _search_group(group: list[_Segment | _Prefix], queries: np.ndarray,
                  radius: float, k: int) -> list[Hits]:
    best: list[Hits] = [[] for _ in queries]
    for part in group:
        best = [_first(a + b, k) for a, b in
                zip(best, part.nearest(queries, radius, k), strict=True)]
    return best


class FaceIndex:
    """Enrolled face embeddings by id. Thread-safe: searches run while adds and removals do."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # writers only
        self._view = _View((), _Prefix(_Delta(), 0))
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Make these embeddings findable now. An id must not be in the index already (it may
        come back after its removal). Vectors are stored as float32."""
        ids, vectors = _checked_ids(ids), _checked_vectors(vectors, "vectors")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("the same id twice in one add")
        if len(ids) == 0:
            return
        with self._lock:
            view = self._view
            if _live_in(view, ids).any():
                raise ValueError("an id is in the index already: remove it first")
            delta = view.delta
            if len(delta) + len(ids) <= DELTA_CAPACITY:
                delta.delta.write(len(delta), ids, vectors)
                self._view = _View(view.segments, _Prefix(delta.delta, len(delta) + len(ids)))
            else:
                self._view = _View(_sealed(view, ids, vectors), _Prefix(_Delta(), 0))
            self._live += len(ids)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Stop finding these embeddings, for every search that starts after this returns.
        Unknown ids are ignored; returns how many embeddings were removed."""
        ids = np.unique(_checked_ids(ids))
        with self._lock:
            view = self._view
            removed = 0
            for segment in view.segments:
                rows, alive = segment.find(ids)
                segment.dead[rows[alive]] = True
                removed += int(alive.sum())
            rows = np.flatnonzero(np.isin(view.delta.ids, ids) & ~view.delta.dead)
            view.delta.delta.dead[rows] = True
            removed += len(rows)
            self._live -= removed
            segments = _compacted(view.segments)
            if segments is not view.segments:
                self._view = _View(segments, view.delta)
        return removed

    def search(self, queries: np.ndarray, radius: float, k: int = 1) -> list[Hits]:
        """For each query (an (n, 128) array, taken as float32), the (id, distance) of the k
        nearest embeddings nearer than the radius, nearest first (ties: lower id first).
        Exact: the same answer as comparing with every embedding in the index (float64
        distance between the float32 values)."""
        queries = _checked_vectors(queries, "queries")
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a positive number, not {radius!r}")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a whole number of at least 1, not {k!r}")
        view = self._view  # one consistent view for the whole search, without a lock
        groups = _groups(view)
        others = [_pool().submit(_search_group, group, queries, radius, k)
                  for group in groups[1:]]
        best = _search_group(groups[0], queries, radius, k)
        for other in others:
            best = [_first(a + b, k) for a, b in zip(best, other.result(), strict=True)]
        return best

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored float32 vectors of these ids; NaN rows for ids not in the index (never
        added, or removed since a search found them)."""
        ids = _checked_ids(ids)
        out = np.full((len(ids), DIMENSIONS), np.nan, np.float32)
        for part in self._view.parts():
            rows, alive = part.find(ids)
            out[alive] = part.stored(rows[alive])
        return out


def _live_in(view: _View, ids: np.ndarray) -> np.ndarray:
    """Which of these ids the view holds alive."""
    live = np.zeros(len(ids), bool)
    for part in view.parts():
        live |= part.find(ids)[1]
    return live


def _sealed(view: _View, ids: np.ndarray, vectors: np.ndarray) -> tuple[_Segment, ...]:
    """The view's segments, with the delta's live rows and these new ones made into more.
    Small segments at the end are merged like a binary counter, so that beside the full ones
    there are at most about log2(SEGMENT_CAPACITY / DELTA_CAPACITY)."""
    delta_ids, delta_vectors = view.delta.live()
    ids = np.concatenate((delta_ids, ids))
    vectors = np.concatenate((delta_vectors, vectors))
    segments = list(view.segments)
    for start in range(0, len(ids), SEGMENT_CAPACITY):
        chunk_ids = ids[start:start + SEGMENT_CAPACITY]
        chunk_vectors = vectors[start:start + SEGMENT_CAPACITY]
        while (segments and len(segments[-1]) <= len(chunk_ids)
               and len(segments[-1]) + len(chunk_ids) <= SEGMENT_CAPACITY):
            last_ids, last_vectors = segments.pop().live()
            chunk_ids = np.concatenate((last_ids, chunk_ids))
            chunk_vectors = np.concatenate((last_vectors, chunk_vectors))
        segments.append(_Segment.build(chunk_ids, chunk_vectors))
    return tuple(segments)


def _compacted(segments: tuple[_Segment, ...]) -> tuple[_Segment, ...]:
    """Segments that are mostly dead rebuilt from their live rows (dead rows cost scan time
    and memory); the same tuple when none is."""
    if all(segment.dead.sum() <= DEAD_SHARE_TO_COMPACT * len(segment) for segment in segments):
        return segments
    return tuple(segment if segment.dead.sum() <= DEAD_SHARE_TO_COMPACT * len(segment)
                 else _Segment.build(*segment.live())
                 for segment in segments if not segment.dead.all())


def _checked_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or (len(array) and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError("ids must be a flat sequence of integers")
    return array.astype(np.int64)


def _checked_vectors(vectors: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != DIMENSIONS:
        raise ValueError(f"{name} must be an (n, {DIMENSIONS}) array, not {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) and array.size:
        raise ValueError(f"{name} must be floating point, not {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array
