"""Face registry index at scale: search latency, build and add time, memory, removal latency.

    .venv/bin/python bench/face_index.py [--sizes 100000 1000000] [--compare] [--out FILE.json]

Synthetic embeddings shaped like dlib's 128-d face descriptors (measured on 282 real ones from
../shared/data/faces: norms 1.25-1.63, a shared mean of norm 1.31, about 25 effective
dimensions; same person 0.26-0.60 apart, median 0.35; different people median 0.78-0.90):
- a fixed mean of norm 1.31;
- identity centres around it: variances falling as 1/i over a random basis (the fit to the
  real spectrum), total 0.293, 40% of it shared by one of 16 groups (so that, as in real
  data, about 1% of pairs of strangers come closer than 0.6);
- photos: centre + noise with the same 1/i shape (another basis), total 0.068.
That gives norms 1.35-1.54, photos of one person 0.29-0.47 apart (5th-95th percentile, median
0.36), strangers median 0.82 (1% below 0.60).

Per size, one embedding per enrolled person: the time to add them 3 at a time (as the matcher
loads the registry, one enrolment after another) into a first index; then, all added at once
into a second:
- search latency, one query at a time and in batches of 5 (p50, p99), as the matcher asks
  (the NEIGHBOURS nearest within REGISTRY_MATCH / MARGIN; also the nearest alone within
  REGISTRY_MATCH); the queries are half new photos of enrolled people, half strangers;
- agreement with a brute-force search on 50 of those queries (the same NEIGHBOURS ids);
- add latency (an enrolment of 3 photos; every DELTA_CAPACITY rows one seals the delta),
  removal latency (one embedding, and how many searches found it after);
- resident memory of the index (RSS before and after the build).
--compare also times the alternatives on the same data: numpy brute force, faiss
IndexFlatL2, float16 codes, IVF-Flat, HNSW (recall: share of queries with a match below the
threshold whose nearest it finds), and how much a triangle-inequality bound over 1,024 k-means
cells can rule out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psutil

from waakhond.consent.index import DELTA_CAPACITY, FaceIndex
from waakhond.consent.matcher import MARGIN, NEIGHBOURS
from waakhond.signals.identity import DIMENSIONS, REGISTRY_MATCH

# What the matcher asks for each face: the NEIGHBOURS nearest within this radius.
RADIUS = REGISTRY_MATCH / MARGIN

QUERIES = 400
CHECKED = 50
ROUNDS = 100


class Faces:
    """The synthetic model in the module docstring."""

    def __init__(self, seed: int = 0, groups: int = 16, group_share: float = 0.4) -> None:
        self.rng = np.random.default_rng(seed)
        mean = self.rng.standard_normal(DIMENSIONS)
        spread = 1 / np.arange(1, DIMENSIONS + 1)
        spread /= spread.sum()
        identity_basis = self._basis()
        self.group_axes = identity_basis * np.sqrt(spread * 0.293 * group_share)
        self.identity_axes = identity_basis * np.sqrt(spread * 0.293 * (1 - group_share))
        self.photo_axes = (self._basis() * np.sqrt(spread * 0.068)).astype(np.float32)
        self.groups = (mean / np.linalg.norm(mean) * 1.31
                       + self.rng.standard_normal((groups, DIMENSIONS)) @ self.group_axes.T)

    def _basis(self) -> np.ndarray:
        return np.linalg.qr(self.rng.standard_normal((DIMENSIONS, DIMENSIONS)))[0]

    def identities(self, n: int) -> np.ndarray:
        out = np.empty((n, DIMENSIONS), np.float32)
        for start in range(0, n, 100_000):  # bounded float64 temporaries
            rows = min(100_000, n - start)
            out[start:start + rows] = (
                self.groups[self.rng.integers(0, len(self.groups), rows)]
                + self.rng.standard_normal((rows, DIMENSIONS)) @ self.identity_axes.T)
        return out

    def photos(self, centres: np.ndarray) -> np.ndarray:
        out = np.empty_like(centres)
        for start in range(0, len(centres), 100_000):
            part = centres[start:start + 100_000]
            noise = self.rng.standard_normal(part.shape, np.float32) @ self.photo_axes.T
            out[start:start + len(part)] = part + noise
        return out


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def brute_force(stored: np.ndarray, query: np.ndarray, radius: float, k: int) -> list[int]:
    """The ids of the k nearest within the radius (ties: lower id first)."""
    near: list[tuple[float, int]] = []
    for start in range(0, len(stored), 131_072):
        part = stored[start:start + 131_072].astype(np.float64)
        distances = np.sqrt(((part - query.astype(np.float64)) ** 2).sum(axis=1))
        near += [(float(distances[row]), start + int(row))
                 for row in np.flatnonzero(distances < radius)]
    return [vector_id for _, vector_id in sorted(near)[:k]]


def measure(n: int, compare: bool) -> dict[str, Any]:
    faces = Faces()
    centres = faces.identities(n)
    stored = faces.photos(centres)
    enrolled = faces.photos(centres[faces.rng.integers(0, n, QUERIES // 2)])
    queries = np.concatenate((enrolled, faces.photos(faces.identities(QUERIES - QUERIES // 2))))
    faces.rng.shuffle(queries)
    incremental = incremental_build(stored)
    before = rss_mib()
    index = FaceIndex()
    build_s = timed(lambda: index.add(np.arange(n), stored))
    index_mib = rss_mib() - before
    result: dict[str, Any] = {
        "n": n, "radius": RADIUS, "neighbours": NEIGHBOURS, "build_s": round(build_s, 2),
        "build_in_enrolments_of_3_s": round(incremental, 1),
        "index_rss_mib": round(index_mib),
        "index_bytes_per_embedding": round(index_mib * 2**20 / n),
        **latencies(index, queries),
        "agrees_with_brute_force": agreement(index, stored, queries[:CHECKED]),
        **changes(index, faces, stored),
    }
    if compare:
        result["alternatives"] = alternatives(stored, queries)
    return result


def incremental_build(stored: np.ndarray) -> float:
    """Seconds to add everything 3 embeddings at a time, as the matcher loads the registry."""
    index = FaceIndex()
    started = time.perf_counter()
    for start in range(0, len(stored), 3):
        index.add(range(start, min(start + 3, len(stored))), stored[start:start + 3])
    return time.perf_counter() - started


def latencies(index: FaceIndex, queries: np.ndarray) -> dict[str, Any]:
    """The matcher's search: the NEIGHBOURS nearest within RADIUS, and the nearest alone."""
    index.search(queries[:5], RADIUS, NEIGHBOURS)  # warm up
    single = [timed(lambda q=q: index.search(q[None, :], RADIUS, NEIGHBOURS)) for q in queries]
    batches = [timed(lambda i=i: index.search(queries[i:i + 5], RADIUS, NEIGHBOURS))
               for i in range(0, len(queries), 5)]
    nearest = [timed(lambda q=q: index.search(q[None, :], REGISTRY_MATCH)) for q in queries]
    found = sum(bool(hits) for hits in index.search(queries, REGISTRY_MATCH))
    return {"single": percentiles(single), "batch_of_5": percentiles(batches),
            "nearest_only": percentiles(nearest),
            "queries_within_threshold": f"{found}/{len(queries)}"}


def agreement(index: FaceIndex, stored: np.ndarray, queries: np.ndarray) -> str:
    """Queries whose NEIGHBOURS nearest within RADIUS are exactly the brute-force ones."""
    found = [[vector_id for vector_id, _ in hits]
             for hits in index.search(queries, RADIUS, NEIGHBOURS)]
    truth = [brute_force(stored, query, RADIUS, NEIGHBOURS) for query in queries]
    return f"{sum(a == b for a, b in zip(found, truth, strict=True))}/{len(queries)}"


def changes(index: FaceIndex, faces: Faces, stored: np.ndarray) -> dict[str, Any]:
    """Enrolments of 3 photos added, then single embeddings removed, each checked at once."""
    n = len(stored)
    adds, removals, found_after = [], [], 0
    for i in range(ROUNDS):
        photos = faces.photos(faces.identities(3))
        ids = np.arange(n + 3 * i, n + 3 * i + 3)
        adds.append(timed(lambda ids=ids, photos=photos: index.add(ids, photos)))
        removals.append(timed(lambda i=i: index.remove([i])))
        found_after += i in [hit[0] for hit in index.search(stored[i:i + 1], 0.01)[0]]
    return {"add_enrolment": percentiles(adds), "remove_one": percentiles(removals),
            "removed_still_found": found_after}


def alternatives(stored: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    sample = queries[:100]
    truth = [next(iter(brute_force(stored, query, REGISTRY_MATCH, 1)), None)
             for query in sample]
    return {"numpy float32 brute force": numpy_brute_force(stored, sample),
            "faiss IndexFlatL2": flat(faiss.IndexFlatL2(DIMENSIONS), stored, sample, 1),
            "faiss float16 codes": flat(faiss.IndexScalarQuantizer(
                DIMENSIONS, faiss.ScalarQuantizer.QT_fp16), stored, sample, 16),
            **ivf(stored, sample, truth), **hnsw(stored, sample, truth),
            "triangle bound: share not ruled out": triangle_bound(stored, sample[:30])}


def single_p50(search: Callable[[np.ndarray], object], queries: np.ndarray) -> dict[str, Any]:
    search(queries[:1])
    return percentiles([timed(lambda q=q: search(q[None, :])) for q in queries])


def numpy_brute_force(stored: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """The nearest by |x|^2 - 2 x.q over all rows: one float32 matrix product (BLAS)."""
    norms = (stored.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    return single_p50(lambda q: (norms[:, None] - 2 * (stored @ q.T)).argmin(axis=0), queries)


def flat(index: faiss.Index, stored: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    index.add(stored)
    return single_p50(lambda q: index.search(q, k), queries)


def recall(index: faiss.Index, queries: np.ndarray, truth: list[int | None]) -> float:
    """Share of the queries with a match below the threshold whose nearest is found."""
    _, ids = index.search(queries, 1)
    expected = [(int(found), want) for found, want in zip(ids[:, 0], truth, strict=True)
                if want is not None]
    return round(sum(found == want for found, want in expected) / max(len(expected), 1), 3)


def ivf(stored: np.ndarray, queries: np.ndarray, truth: list[int | None]) -> dict[str, Any]:
    lists = int(4 * np.sqrt(len(stored)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIMENSIONS), DIMENSIONS, lists)
    train = np.random.default_rng(1).choice(len(stored), min(len(stored), 100 * lists),
                                            replace=False)
    build = timed(lambda: (index.train(stored[train]), index.add(stored)))
    out = {}
    for probes in (8, 32, 128):
        index.nprobe = probes
        out[f"IVF-Flat {lists} lists, nprobe {probes}"] = {
            "build_s": round(build, 1), "recall": recall(index, queries, truth),
            **single_p50(lambda q: index.search(q, 1), queries)}
    return out


def hnsw(stored: np.ndarray, queries: np.ndarray, truth: list[int | None]) -> dict[str, Any]:
    index = faiss.IndexHNSWFlat(DIMENSIONS, 32)
    index.hnsw.efConstruction = 80
    build = timed(lambda: index.add(stored))
    out = {}
    for ef in (32, 128):
        index.hnsw.efSearch = ef
        out[f"HNSW M=32, efSearch {ef}"] = {
            "build_s": round(build, 1), "recall": recall(index, queries, truth),
            **single_p50(lambda q: index.search(q, 1), queries)}
    return out


def triangle_bound(stored: np.ndarray, queries: np.ndarray) -> float:
    """Share of vectors that |d(q, cell) - d(x, cell)| < threshold cannot rule out."""
    rng = np.random.default_rng(2)
    kmeans = faiss.Kmeans(DIMENSIONS, 1024, niter=10, seed=1)
    kmeans.train(stored[rng.choice(len(stored), min(len(stored), 100_000), replace=False)])
    _, cells = kmeans.index.search(stored, 1)
    to_cell = np.linalg.norm(stored - kmeans.centroids[cells[:, 0]], axis=1)
    shares = [np.mean(np.abs(np.linalg.norm(kmeans.centroids - q, axis=1)[cells[:, 0]]
                             - to_cell) < REGISTRY_MATCH) for q in queries]
    return round(float(np.mean(shares)), 3)


def machine() -> dict[str, Any]:
    return {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "faiss": faiss.__version__, "delta_capacity": DELTA_CAPACITY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--compare", action="store_true",
                        help="also time the alternatives (HNSW takes minutes to build at 1M)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine(), "results": []}
    print(json.dumps(report["machine"]), flush=True)
    for n in args.sizes:
        result = measure(n, args.compare)
        print(json.dumps(result), flush=True)
        report["results"].append(result)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"load_average_after": report["load_average_after"],
                      "peak_rss_mib": report["peak_rss_mib"]}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
