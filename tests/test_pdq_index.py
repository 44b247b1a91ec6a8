"""PdqIndex: exact recall up to distance 31 against a brute force, and add/remove semantics
that hold through compaction.

Hashes are random bits; near copies are built by flipping chosen bits, so every distance is
known. Building a base allocates offset tables of 2**23 and 2**24 entries per chunk (about 2 s
and 450 MB even when empty), so one empty base is built per module and shared: it is immutable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from waakhond.hashing.pdq_index import DELTA_CAPACITY, MAX_RADIUS, PdqIndex, words_from_hex
from waakhond.signals.hashes import pdq_hex

# The index's chunks, from its docstring: a copy spread evenly over them is the hardest to find.
CHUNK_WIDTHS = (23,) * 8 + (24,) * 3
CHUNK_STARTS = np.cumsum((0, *CHUNK_WIDTHS[:-1]))

Found = set[tuple[int, int, int]]  # (query, entry id, distance)


def random_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2, (n, 256), dtype=np.uint8)


def to_words(bits: np.ndarray) -> np.ndarray:
    return words_from_hex([pdq_hex(row) for row in bits])


def flipped(bits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    copy = bits.copy()
    copy[positions] ^= 1
    return copy


def spread_positions(distance: int, rng: np.random.Generator) -> np.ndarray:
    """`distance` bit positions dealt round-robin over the chunks (at 31: 3 in nine chunks, 2 in
    two, so only two chunks are within the 2 flips the index probes)."""
    per_chunk = np.zeros(len(CHUNK_WIDTHS), int)
    for i, chunk in enumerate(rng.permutation(len(CHUNK_WIDTHS)).tolist() * 4):
        if i < distance:
            per_chunk[chunk] += 1
    return np.concatenate([start + rng.choice(width, count, replace=False)
                           for start, width, count in zip(CHUNK_STARTS, CHUNK_WIDTHS, per_chunk,
                                                          strict=True)])


def near_copy(bits: np.ndarray, distance: int, rng: np.random.Generator,
              spread: bool = True) -> np.ndarray:
    positions = spread_positions(distance, rng) if spread else \
        rng.choice(256, distance, replace=False)
    return flipped(bits, positions)


def brute_force(stored: np.ndarray, ids: np.ndarray, queries: np.ndarray, radius: int) -> Found:
    found: Found = set()
    for q, query in enumerate(queries):
        distances = (stored != query).sum(axis=1)
        found |= {(q, int(ids[i]), int(distances[i])) for i in np.flatnonzero(distances <= radius)}
    return found


def searched(index: PdqIndex, queries: np.ndarray, radius: int = MAX_RADIUS) -> Found:
    return {(m.query, m.entry_id, m.distance) for m in index.search(to_words(queries), radius)}


def ids_found(index: PdqIndex, query: np.ndarray) -> set[int]:
    return {entry_id for _, entry_id, _ in searched(index, query[None, :])}


def wait_for_compaction() -> None:
    for thread in threading.enumerate():
        if thread.name == "pdq-compaction":
            thread.join()


# --- recall ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    index: PdqIndex
    stored: np.ndarray  # bits, one row per stored hash
    ids: np.ndarray
    queries: np.ndarray
    planted: dict[int, tuple[int, int]]  # entry id -> (query, distance)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """20k random hashes plus, for each of 12 queries, a copy at every distance 0..40 (half
    spread evenly over the chunks, half at random positions); half the copies in the base,
    half added afterwards into the delta. Ids are shuffled and sparse."""
    rng = np.random.default_rng(7)
    queries = random_bits(rng, 12)
    copies, planted_at = [], []
    for q, query in enumerate(queries):
        for distance in range(41):
            copies.append(near_copy(query, distance, rng, spread=q % 2 == 0))
            planted_at.append((q, distance))
    stored = np.concatenate([random_bits(rng, 20_000), np.array(copies)])
    ids = rng.permutation(len(stored)).astype(np.int64) * 7 + 3
    in_base = np.ones(len(stored), bool)
    in_base[20_000 + rng.choice(len(copies), len(copies) // 2, replace=False)] = False
    index = PdqIndex(ids[in_base], to_words(stored[in_base]))
    index.add(ids[~in_base], to_words(stored[~in_base]))
    planted = {int(entry_id): at for entry_id, at in zip(ids[20_000:], planted_at, strict=True)}
    return Corpus(index, stored, ids, queries, planted)


@pytest.mark.parametrize("radius", [31, 10, 0])
def test_search_finds_exactly_what_brute_force_finds(corpus: Corpus, radius: int) -> None:
    expected = brute_force(corpus.stored, corpus.ids, corpus.queries, radius)
    assert searched(corpus.index, corpus.queries, radius) == expected
    assert len(expected) >= 12 * (radius + 1)  # every planted copy within the radius


def test_every_planted_copy_within_31_is_found_at_its_distance(corpus: Corpus) -> None:
    found = searched(corpus.index, corpus.queries)
    planted = {(q, entry_id, d) for entry_id, (q, d) in corpus.planted.items() if d <= 31}
    assert planted <= found
    assert {(q, d) for q, _, d in found} == {(q, d) for q in range(12) for d in range(32)}


def test_copies_at_distance_32_to_40_are_not_returned_at_radius_31(corpus: Corpus) -> None:
    far = {entry_id for entry_id, (_, d) in corpus.planted.items() if d >= 32}
    found = {entry_id for _, entry_id, _ in searched(corpus.index, corpus.queries)}
    assert len(far) == 12 * 9
    assert not far & found


# --- add and remove ----------------------------------------------------------------------------


def test_thousands_of_copies_of_one_hash_are_all_found_once() -> None:
    # More candidates than the search's first buffers hold: they grow, nothing is dropped.
    rng = np.random.default_rng(3)
    query = random_bits(rng, 1)
    copies = np.repeat(query, 3000, axis=0)
    stored = np.concatenate([copies, random_bits(rng, 1000)])
    index = PdqIndex(np.arange(len(stored), dtype=np.int64), to_words(stored))
    assert searched(index, query) == {(0, i, 0) for i in range(3000)}
    assert len(index.search(to_words(query))) == 3000


def test_an_added_hash_matches_at_once() -> None:
    rng = np.random.default_rng(1)
    hashes = random_bits(rng, 3)
    index = PdqIndex()
    index.add(np.array([10, 11, 12]), to_words(hashes))
    assert searched(index, near_copy(hashes[1], 5, rng)[None, :]) == {(0, 11, 5)}
    assert len(index) == 3


@pytest.mark.parametrize("where", ["base", "delta"])
def test_a_removed_hash_stops_matching_at_once(where: str) -> None:
    rng = np.random.default_rng(2)
    hashes = random_bits(rng, 20)
    ids = np.arange(100, 120)
    index = PdqIndex(ids, to_words(hashes)) if where == "base" else PdqIndex()
    if where == "delta":
        index.add(ids, to_words(hashes))
    index.remove([105])
    assert ids_found(index, hashes[5]) == set()
    assert ids_found(index, hashes[6]) == {106}
    assert len(index) == 19


def test_an_id_can_be_added_again_after_removal() -> None:
    rng = np.random.default_rng(3)
    old, new = random_bits(rng, 2)
    index = PdqIndex()
    index.add(np.array([7]), to_words(old[None, :]))
    index.remove([7])
    index.add(np.array([7]), to_words(new[None, :]))
    assert ids_found(index, old) == set()
    assert searched(index, new[None, :]) == {(0, 7, 0)}


def test_removing_an_unknown_id_changes_nothing() -> None:
    rng = np.random.default_rng(4)
    hashes = random_bits(rng, 2)
    index = PdqIndex()
    index.add(np.array([1, 2]), to_words(hashes))
    index.remove([99])
    assert ids_found(index, hashes[0]) == {1}
    assert len(index) == 2


# --- compaction --------------------------------------------------------------------------------


def test_compaction_keeps_removals_and_adds_made_while_it_ran() -> None:
    rng = np.random.default_rng(5)
    hashes = random_bits(rng, 8)
    index = PdqIndex(np.arange(4), to_words(hashes[:4]))
    index.add(np.arange(4, 6), to_words(hashes[4:6]))
    index.remove([0])  # before compaction: never folded in
    index.compact(wait=False)
    index.remove([1, 4])  # one from the base, one from the delta being folded
    index.add(np.arange(6, 8), to_words(hashes[6:8]))  # after compaction started
    index.add(np.array([1]), to_words(hashes[7:8]))  # id 1 again, with another hash
    index.compact(wait=True)
    wait_for_compaction()

    assert [ids_found(index, h) for h in hashes] == [set(), set(), {2}, {3}, set(), {5}, {6},
                                                     {1, 7}]
    assert len(index) == 6


def test_filling_the_delta_compacts_in_the_background_and_loses_nothing() -> None:
    rng = np.random.default_rng(6)
    hashes = random_bits(rng, DELTA_CAPACITY + 3)
    ids = np.arange(len(hashes))
    index = PdqIndex()
    index.add(ids[:-2], to_words(hashes[:-2]))  # one past the capacity: compaction starts
    assert any(t.name == "pdq-compaction" for t in threading.enumerate())
    index.remove([0, DELTA_CAPACITY])
    index.add(ids[-2:], to_words(hashes[-2:]))
    wait_for_compaction()

    probes = [0, 1, DELTA_CAPACITY - 1, DELTA_CAPACITY, DELTA_CAPACITY + 1, DELTA_CAPACITY + 2]
    assert [ids_found(index, hashes[i]) for i in probes] == [
        set(), {1}, {DELTA_CAPACITY - 1}, set(), {DELTA_CAPACITY + 1}, {DELTA_CAPACITY + 2}]
    assert len(index) == len(hashes) - 2
    index.remove([1])  # and removal after compaction still works on the new base
    assert ids_found(index, hashes[1]) == set()


def test_near_copies_are_found_the_same_before_and_after_compaction() -> None:
    rng = np.random.default_rng(8)
    queries = random_bits(rng, 4)
    stored = np.array([near_copy(q, d, rng) for q in queries for d in (0, 15, 31, 32)])
    ids = np.arange(len(stored))
    index = PdqIndex()
    index.add(ids, to_words(stored))
    before = searched(index, queries)
    index.compact(wait=True)
    assert searched(index, queries) == before == brute_force(stored, ids, queries, 31)


def test_searches_running_while_compactions_swap_segments_always_find_everything() -> None:
    rng = np.random.default_rng(9)
    hashes = random_bits(rng, 50)
    index = PdqIndex()
    index.add(np.arange(50), to_words(hashes))
    stop = threading.Event()

    def compact_again_and_again() -> None:
        while not stop.is_set():
            index.compact(wait=True)

    worker = threading.Thread(target=compact_again_and_again)
    worker.start()
    try:
        for round_ in range(200):
            assert ids_found(index, hashes[round_ % 50]) == {round_ % 50}
    finally:
        stop.set()
        worker.join()


# --- limits and conventions --------------------------------------------------------------------


@pytest.mark.parametrize("radius", [32, -1])
def test_a_radius_outside_0_to_31_is_refused(radius: int) -> None:
    with pytest.raises(ValueError, match=r"radius must be 0\.\.31"):
        PdqIndex().search(to_words(random_bits(np.random.default_rng(0), 1)), radius)


def test_an_empty_index_finds_nothing() -> None:
    index = PdqIndex()
    assert index.search(to_words(random_bits(np.random.default_rng(0), 3))) == []
    assert len(index) == 0


def test_words_from_hex_reads_pdq_hex_first_bit_most_significant() -> None:
    bits = random_bits(np.random.default_rng(10), 5)
    words = words_from_hex([pdq_hex(row) for row in bits])
    assert words.shape == (5, 4) and words.dtype == np.uint64
    unpacked = np.unpackbits(words.astype(">u8").view(np.uint8), axis=1)
    assert np.array_equal(unpacked, bits)
    one = np.zeros(256, np.uint8)
    one[0] = 1
    assert words_from_hex([pdq_hex(one)])[0].tolist() == [1 << 63, 0, 0, 0]
