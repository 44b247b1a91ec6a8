"""Hash banks end to end: lifecycle, matching semantics, files, the exchange, the screener and
the CLI.

Each test has its own SQLite file; "another process" is a second Database object on it. PDQ
hashes are random bits with chosen bits flipped for near copies; image-level tests use harmless
face photos. An empty PDQ base allocates offset tables of 2**23..2**24 entries per chunk (about
2 s), so one is built per module and shared by every matcher built on an empty database (it is
immutable); matchers built over stored hashes build their own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from sqlalchemy import text

from tests.fake_stopncii import FakeStopNCII
from waakhond.config import IntakeLimits, ScreeningSettings
from waakhond.core import Action
from waakhond.hashing import matcher as matcher_module
from waakhond.hashing.banks import BankError, BankKind, BankService, EntryInput
from waakhond.hashing.exchange import EntryStatus, ExchangeError, Feedback, StopNCIIExchange
from waakhond.hashing.formats import HashFileError, read_entries, write_entries
from waakhond.hashing.matcher import REFRESH_SECONDS, FloodGuard, HashMatcher
from waakhond.intake import decode_image
from waakhond.screening import Screener
from waakhond.signals.bank_match import BankMatchDetector
from waakhond.signals.base import (
    BankMatches,
    Face,
    Faces,
    Hashes,
    NsfwScore,
    NudityRegions,
    Region,
    SignalSet,
)
from waakhond.signals.hashes import HashDetector, pdq_hex
from waakhond.store import Database

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface"
WAAKHOND = Path(sys.executable).with_name("waakhond")


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def banks(db_url: str) -> BankService:
    return BankService(Database(db_url))


@pytest.fixture
def other(db_url: str) -> BankService:
    """The same database seen from another process (the CLI, an exchange fetch)."""
    return BankService(Database(db_url))


@pytest.fixture
def matcher(banks: BankService) -> HashMatcher:
    """Built on the empty database; tests add banks and entries, then call refresh()."""
    return HashMatcher(banks)


@pytest.fixture
def frozen_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A matcher refreshes only when asked: what a match sees within REFRESH_SECONDS."""
    monkeypatch.setattr(matcher_module, "REFRESH_SECONDS", 3600.0)


def random_bits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, 256).astype(np.uint8)


def random_pdq(seed: int) -> str:
    return pdq_hex(random_bits(seed))


def at_distance(pdq: str, distance: int, seed: int = 0) -> str:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(pdq), np.uint8))
    bits[np.random.default_rng(seed).choice(256, distance, replace=False)] ^= 1
    return pdq_hex(bits)


def md5_of(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def sha256_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def content(pdq: str, quality: int = 100, name: str = "upload") -> Hashes:
    """The hashes of some upload: its PDQ as given, MD5 and SHA-256 of its name."""
    return Hashes(md5_of(name), sha256_of(name), pdq, quality, (pdq,))


def matched(result: BankMatches) -> set[str]:
    return {m.bank for m in result.matches}


def values(banks: BankService, name: str) -> list[tuple[str, str, str]]:
    return [(e.signal_type, e.value, e.status) for e in banks.entries(name)]


def image_bytes(path: Path, transpose: Image.Transpose | None = None) -> bytes:
    image = Image.open(path)
    if transpose is None:
        return path.read_bytes()
    buffer = io.BytesIO()
    image.transpose(transpose).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def hashes_of(data: bytes) -> Hashes:
    return HashDetector().run(decode_image(data, IntakeLimits()), SignalSet())


# --- banks -------------------------------------------------------------------------------------


def test_a_created_bank_is_listed_with_its_settings_and_counts(banks: BankService) -> None:
    info = banks.create("victims", "ncii_victim", source="portal", match_distance=20,
                        enabled_ratio=0.5)
    banks.create("known", "csam_known")
    banks.add("victims", [EntryInput("pdq", random_pdq(1)), EntryInput("md5", md5_of("a")),
                          EntryInput("md5", md5_of("b"), EntryStatus.WITHDRAWN)])

    assert (info.name, info.kind, info.source, info.match_distance, info.enabled_ratio) == (
        "victims", BankKind.NCII_VICTIM, "portal", 20, 0.5)
    assert [b.name for b in banks.list()] == ["known", "victims"]
    assert banks.info("victims").entries == {"active": 2, "withdrawn": 1}
    assert banks.info("known").match_distance == 31 and banks.info("known").entries == {}


def test_a_second_bank_with_the_same_name_is_refused(banks: BankService) -> None:
    banks.create("victims", "ncii_victim")
    with pytest.raises(BankError, match="exists already"):
        banks.create("victims", "csam_known")
    assert banks.info("victims").kind is BankKind.NCII_VICTIM


def test_an_unknown_kind_is_refused(banks: BankService) -> None:
    with pytest.raises(BankError, match="unknown bank kind 'spam'"):
        banks.create("b", "spam")
    assert banks.list() == []


@pytest.mark.parametrize(("distance", "ratio", "message"), [
    (-1, 1.0, "match distance"), (32, 1.0, "match distance"),
    (31, -0.1, "enabled ratio"), (31, 1.01, "enabled ratio"), (31, float("nan"), "enabled ratio"),
])
def test_a_distance_outside_0_to_31_or_a_ratio_outside_0_to_1_is_refused(
    banks: BankService, distance: int, ratio: float, message: str
) -> None:
    with pytest.raises(BankError, match=message):
        banks.create("b", "ncii_victim", match_distance=distance, enabled_ratio=ratio)
    assert banks.list() == []


def test_an_unknown_bank_is_an_error(banks: BankService) -> None:
    with pytest.raises(BankError, match="no bank named 'nope'"):
        banks.add("nope", [EntryInput("md5", md5_of("a"))])


def test_entries_are_stored_in_canonical_form_and_updated_not_duplicated(
    banks: BankService,
) -> None:
    pdq = random_pdq(1)
    banks.create("b", "ncii_victim")
    banks.add("b", [EntryInput("PDQ", pdq.upper(), metadata={"case": "1"})])
    banks.add("b", [EntryInput("pdq", pdq, metadata={"source": "x"}, note="seen twice")])

    [entry] = banks.entries("b")
    assert (entry.signal_type, entry.value, entry.note) == ("pdq", pdq, "seen twice")
    assert entry.metadata == {"case": "1", "source": "x"}


def test_an_add_with_one_bad_entry_stores_none_of_them(banks: BankService) -> None:
    banks.create("b", "ncii_victim")
    with pytest.raises(ValueError, match="64 hex characters"):
        banks.add("b", [EntryInput("md5", md5_of("a")), EntryInput("pdq", "xyz")])
    assert list(banks.entries("b")) == []


# --- the matcher sees changes from other processes ---------------------------------------------


def victims_bank_holding(banks: BankService, matcher: HashMatcher, pdq: str) -> None:
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq)])
    matcher.refresh()


def test_a_withdrawal_elsewhere_stops_matching_within_refresh_seconds(
    banks: BankService, other: BankService, matcher: HashMatcher
) -> None:
    pdq = random_pdq(1)
    victims_bank_holding(banks, matcher, pdq)
    assert matched(matcher.match(content(pdq))) == {"victims"}

    other.set_status("victims", "pdq", pdq, EntryStatus.WITHDRAWN)
    time.sleep(REFRESH_SECONDS + 0.1)

    assert matched(matcher.match(content(pdq))) == set()


def test_a_withdrawal_elsewhere_stops_matching_at_once_after_refresh(
    banks: BankService, other: BankService, matcher: HashMatcher
) -> None:
    pdq = random_pdq(1)
    victims_bank_holding(banks, matcher, pdq)
    assert matched(matcher.match(content(at_distance(pdq, 8)))) == {"victims"}

    other.set_status("victims", "pdq", pdq, EntryStatus.WITHDRAWN)
    matcher.refresh()

    assert matched(matcher.match(content(at_distance(pdq, 8)))) == set()
    assert other.entry("victims", "pdq", pdq).status == EntryStatus.WITHDRAWN


def test_a_hash_added_elsewhere_matches_within_a_second(
    banks: BankService, other: BankService, matcher: HashMatcher
) -> None:
    pdq = random_pdq(2)
    banks.create("victims", "ncii_victim")
    matcher.refresh()
    other.add("victims", [EntryInput("pdq", pdq)])
    added = time.monotonic()

    while not matcher.match(content(pdq)).matches and time.monotonic() - added < 1.0:
        time.sleep(0.05)

    assert matched(matcher.match(content(pdq))) == {"victims"}
    assert time.monotonic() - added < 1.0


def test_delete_purges_the_entry_and_the_change_log_keeps_no_hash(
    banks: BankService, other: BankService, matcher: HashMatcher, db_url: str
) -> None:
    pdq, md5 = random_pdq(3), md5_of("a")
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq), EntryInput("md5", md5)])
    matcher.refresh()

    other.set_status("victims", "pdq", pdq, EntryStatus.DELETED)
    other.set_status("victims", "md5", md5, EntryStatus.DELETED)
    matcher.refresh()

    assert list(banks.entries("victims")) == []
    assert banks.info("victims").entries == {}
    assert matched(matcher.match(Hashes(md5, sha256_of("a"), pdq, 100, (pdq,)))) == set()
    with Database(db_url).engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM bank_changes")).all()
    log = [tuple(map(str, row)) for row in rows]
    assert len(log) == 4  # added twice, deleted twice
    assert not [row for row in log if pdq in row or md5 in row]
    with pytest.raises(BankError, match="has no pdq entry"):
        banks.set_status("victims", "pdq", pdq, EntryStatus.ACTIVE)  # nothing left to restore


def test_restore_makes_a_withdrawn_entry_match_again(
    banks: BankService, other: BankService, matcher: HashMatcher
) -> None:
    pdq = random_pdq(4)
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq, EntryStatus.WITHDRAWN)])
    matcher.refresh()
    assert matched(matcher.match(content(pdq))) == set()

    restored = other.set_status("victims", "pdq", pdq, EntryStatus.ACTIVE)
    matcher.refresh()

    assert restored.status == EntryStatus.ACTIVE
    assert matched(matcher.match(content(pdq))) == {"victims"}


# --- what matches ------------------------------------------------------------------------------


@pytest.mark.parametrize(("distance", "expected"), [
    (0, {"strict", "wide"}), (10, {"strict", "wide"}), (16, {"wide"}), (31, {"wide"}),
    (40, set()),
])
def test_each_bank_matches_up_to_its_own_distance(
    banks: BankService, matcher: HashMatcher, distance: int, expected: set[str]
) -> None:
    pdq = random_pdq(5)
    banks.create("strict", "ncii_victim", match_distance=10)
    banks.create("wide", "ncii_victim", match_distance=31)
    banks.add("strict", [EntryInput("pdq", pdq)])
    banks.add("wide", [EntryInput("pdq", pdq)])
    matcher.refresh()

    result = matcher.match(content(at_distance(pdq, distance)))

    assert matched(result) == expected
    assert {m.distance for m in result.matches} <= {distance}


@pytest.mark.parametrize("transpose", [Image.Transpose.ROTATE_90, Image.Transpose.FLIP_LEFT_RIGHT],
                         ids=["rotated", "mirrored"])
def test_a_rotated_or_mirrored_photo_matches_through_its_dihedral_hashes(
    banks: BankService, matcher: HashMatcher, transpose: Image.Transpose
) -> None:
    original = hashes_of(image_bytes(FACES / "img1.jpg"))
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", original.pdq)])
    matcher.refresh()

    copy = hashes_of(image_bytes(FACES / "img1.jpg", transpose))
    unrelated = hashes_of(image_bytes(FACES / "img2.jpg"))

    assert (int(copy.pdq, 16) ^ int(original.pdq, 16)).bit_count() > 31  # not by its own PDQ
    [match] = matcher.match(copy).matches
    assert (match.bank, match.signal_type, match.value) == ("victims", "pdq", original.pdq)
    assert match.distance <= 10
    assert matcher.match(unrelated).matches == ()


def bordered(path: Path, fill: str, sides: tuple[int, int, int, int]) -> bytes:
    """The photo inside a solid border of (left, top, right, bottom) pixels, as a JPEG."""
    image = Image.open(path).convert("RGB")
    buffer = io.BytesIO()
    ImageOps.expand(image, sides, fill=fill).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(("fill", "sides"),
                         [("black", (100, 100, 100, 100)), ("white", (0, 200, 0, 200))],
                         ids=["black frame", "white letterbox"])
def test_a_copy_with_a_border_added_matches_through_the_picture_inside(
    banks: BankService, matcher: HashMatcher, fill: str, sides: tuple[int, int, int, int]
) -> None:
    original = hashes_of(image_bytes(FACES / "img1.jpg"))
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", original.pdq)])
    matcher.refresh()

    copy = hashes_of(bordered(FACES / "img1.jpg", fill, sides))

    assert original.pdq_inside_border == ()  # the original has no border
    assert (int(copy.pdq, 16) ^ int(original.pdq, 16)).bit_count() > 31  # not by its own PDQ
    assert len(copy.pdq_inside_border) == 8
    [match] = matcher.match(copy).matches
    assert (match.bank, match.value) == ("victims", original.pdq)
    assert match.distance <= 12


def test_an_edge_under_2_percent_or_a_flat_image_gets_no_second_hash() -> None:
    thin = hashes_of(bordered(FACES / "img1.jpg", "black", (2, 2, 2, 2)))
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "navy").save(buffer, "PNG")
    flat = hashes_of(buffer.getvalue())
    assert thin.pdq_inside_border == flat.pdq_inside_border == ()


def test_removing_a_bordered_copy_also_catches_the_original_without_its_border(
    banks: BankService, matcher: HashMatcher
) -> None:
    copy = hashes_of(bordered(FACES / "img1.jpg", "black", (30, 30, 30, 30)))
    matcher.record_removal(copy, "ncii")
    matcher.refresh()

    result = matcher.match(hashes_of(image_bytes(FACES / "img1.jpg")))

    assert matched(result) == {"own_removals"}
    assert {m.value for m in result.matches} == {copy.pdq_inside_border[0]}


@pytest.mark.parametrize(("quality", "matches"), [(10, False), (49, False), (50, True)])
def test_a_pdq_below_quality_50_is_not_matched(
    banks: BankService, matcher: HashMatcher, quality: int, matches: bool
) -> None:
    pdq = random_pdq(6)
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq)])
    matcher.refresh()
    assert bool(matcher.match(content(pdq, quality)).matches) is matches


def test_md5_and_sha256_match_exactly(banks: BankService, matcher: HashMatcher) -> None:
    banks.create("known", "csam_known")
    banks.add("known", [EntryInput("md5", md5_of("a")), EntryInput("sha256", sha256_of("b"))])
    matcher.refresh()

    by_md5 = matcher.match(content(random_pdq(7), name="a")).matches
    by_sha256 = matcher.match(content(random_pdq(8), name="b")).matches

    assert [(m.signal_type, m.value, m.distance) for m in by_md5] == [("md5", md5_of("a"), 0)]
    assert [(m.signal_type, m.value, m.distance) for m in by_sha256] == [
        ("sha256", sha256_of("b"), 0)]
    assert matcher.match(content(random_pdq(9), name="c")).matches == ()


def test_a_negative_bank_match_suppresses_every_other_match(
    banks: BankService, matcher: HashMatcher
) -> None:
    pdq = random_pdq(10)
    banks.create("known", "csam_known")
    banks.create("logos", "negative")
    banks.add("known", [EntryInput("pdq", pdq), EntryInput("md5", md5_of("logo"))])
    banks.add("logos", [EntryInput("pdq", at_distance(pdq, 4))])
    matcher.refresh()

    result = matcher.match(content(pdq, name="logo"))

    assert result.matches == ()
    assert sorted((m.bank, m.signal_type) for m in result.suppressed) == [
        ("known", "md5"), ("known", "pdq"), ("logos", "pdq")]


@pytest.mark.parametrize(("ratio", "acts"), [(0.0, False), (1.0, True)])
def test_enabled_ratio_0_suppresses_and_1_acts(
    banks: BankService, matcher: HashMatcher, ratio: float, acts: bool
) -> None:
    pdq = random_pdq(11)
    banks.create("victims", "ncii_victim", enabled_ratio=ratio)
    banks.add("victims", [EntryInput("pdq", pdq)])
    matcher.refresh()

    result = matcher.match(content(pdq))

    assert (matched(result), {m.bank for m in result.suppressed}) == (
        ({"victims"}, set()) if acts else (set(), {"victims"}))


def test_a_bank_enabled_for_all_content_acts_on_every_sha256(
    banks: BankService, matcher: HashMatcher
) -> None:
    banks.create("victims", "ncii_victim", enabled_ratio=1.0)
    banks.add("victims", [EntryInput("sha256", "f" * 64)])
    matcher.refresh()
    assert matched(matcher.match(Hashes(md5_of("a"), "f" * 64, random_pdq(1), 100))) == {
        "victims"}


def test_a_flooding_entry_is_paused_and_matches_again_once_released(
    banks: BankService, other: BankService
) -> None:
    pdq = random_pdq(12)
    matcher = HashMatcher(banks, FloodGuard(floor=3, factor=10))
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq)])
    entry_id = banks.entry("victims", "pdq", pdq).id
    matcher.refresh()

    first_three = [matcher.match(content(pdq)) for _ in range(3)]
    fourth = matcher.match(content(pdq))

    assert all(r.matches and r.quarantined == () for r in first_three)
    assert fourth.quarantined == (entry_id,)
    paused = banks.entry("victims", "pdq", pdq)
    assert paused.quarantined and "flood" in paused.note
    matcher.refresh()
    assert matcher.match(content(pdq)).matches == ()

    assert not other.release("victims", "pdq", pdq).quarantined
    matcher.refresh()
    assert [m.entry_id for m in matcher.match(content(pdq)).matches] == [entry_id]


def test_a_released_entry_is_not_paused_again_by_the_flood_it_was_released_from(
    banks: BankService,
) -> None:
    pdq = random_pdq(12)
    matcher = HashMatcher(banks, FloodGuard(floor=3, factor=10))
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq)])
    matcher.refresh()
    for _ in range(4):
        matcher.match(content(pdq))
    banks.release("victims", "pdq", pdq)
    matcher.refresh()

    result = matcher.match(content(pdq))

    assert result.quarantined == ()
    assert not banks.entry("victims", "pdq", pdq).quarantined


def test_match_feedback_is_counted_on_the_entry(banks: BankService) -> None:
    pdq = random_pdq(13)
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("pdq", pdq)])
    entry_id = banks.entry("victims", "pdq", pdq).id

    for verdict in (Feedback.CONFIRM, Feedback.CONFIRM, Feedback.DISPUTE, Feedback.PENDING):
        banks.feedback(entry_id, verdict, by="reviewer")

    entry = banks.entry("victims", "pdq", pdq)
    assert (entry.confirmed, entry.disputed) == (2, 1)
    with pytest.raises(BankError, match="no bank entry"):
        banks.feedback(entry_id + 100, Feedback.CONFIRM)
    banks.set_status("victims", "pdq", pdq, EntryStatus.DELETED)  # feedback goes with it
    assert list(banks.entries("victims")) == []


@pytest.mark.usefixtures("frozen_refresh")
def test_a_bank_created_elsewhere_since_the_last_refresh_does_not_break_matching(
    other: BankService, matcher: HashMatcher
) -> None:
    other.create("new", "ncii_victim")
    other.add("new", [EntryInput("md5", md5_of("a"))])

    result = matcher.match(content(random_pdq(1), name="a"))

    assert matched(result) in ({"new"}, set())


@pytest.mark.usefixtures("frozen_refresh")
def test_a_stale_index_hit_is_never_reported_as_an_unrelated_entry(
    banks: BankService, other: BankService, matcher: HashMatcher
) -> None:
    harmless, other_hash = random_pdq(14), random_pdq(15)
    banks.create("logos", "own_removals")
    banks.create("known", "csam_known")
    banks.add("logos", [EntryInput("pdq", harmless)])
    matcher.refresh()
    other.set_status("logos", "pdq", harmless, EntryStatus.DELETED)
    other.add("known", [EntryInput("pdq", other_hash)])

    result = matcher.match(content(harmless))

    assert "known" not in matched(result)  # at worst the stale logos entry, never csam_known


def database_locked(_entry_ids: object) -> None:
    raise OSError("database is locked")


def test_changes_a_failed_refresh_could_not_apply_are_applied_by_the_next(
    banks: BankService, other: BankService, matcher: HashMatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pdq = random_pdq(16)
    banks.create("victims", "ncii_victim")
    matcher.refresh()
    other.add("victims", [EntryInput("pdq", pdq)])
    with monkeypatch.context() as patch:
        patch.setattr(banks, "lookup", database_locked)
        with pytest.raises(OSError):
            matcher.refresh()

    matcher.refresh()

    assert matched(matcher.match(content(pdq))) == {"victims"}


# --- hash files --------------------------------------------------------------------------------


def export(banks: BankService, name: str, fmt: str = "csv") -> str:
    out = io.StringIO(newline="")
    write_entries(banks.entries(name), fmt, out)
    return out.getvalue()


def test_a_csv_export_imports_back_as_the_same_rows(banks: BankService, tmp_path: Path) -> None:
    banks.create("source", "ncii_victim")
    banks.create("copy", "ncii_victim")
    banks.add("source", [
        EntryInput("pdq", random_pdq(1), metadata={"case_numbers": "c1,c2", "n": 3}),
        EntryInput("md5", md5_of("a"), EntryStatus.WITHDRAWN, note="taken back"),
        EntryInput("sha256", sha256_of("b"), note='a "quoted", comma\nand a second line, café'),
    ])
    exported = tmp_path / "source.csv"
    exported.write_bytes(export(banks, "source").encode())

    banks.add("copy", read_entries(exported, "csv"))

    assert export(banks, "copy") == export(banks, "source")
    assert [(e.signal_type, e.value, e.status, e.note, e.metadata)
            for e in banks.entries("copy")] == [
        (e.signal_type, e.value, e.status, e.note, e.metadata) for e in banks.entries("source")]


def test_te_files_import_typed_lines_and_bare_hashes(banks: BankService, tmp_path: Path) -> None:
    pdq_a, pdq_b, pdq_c = random_pdq(1), random_pdq(2), random_pdq(3)
    typed, bare = tmp_path / "typed.te", tmp_path / "bare.te"
    typed.write_text(f"# exported list\n\npdq {pdq_a}\nvideo_md5 {md5_of('a').upper()}\n"
                     f"sha256 {sha256_of('b')}\n")
    bare.write_text(f"{pdq_b}\n  {pdq_c}  \n")
    banks.create("b", "ncii_victim")

    banks.add("b", read_entries(typed, "te"))
    banks.add("b", read_entries(bare, "te", default_type="pdq"))
    banks.set_status("b", "pdq", pdq_c, EntryStatus.WITHDRAWN)

    assert values(banks, "b") == [("pdq", pdq_a, "active"), ("md5", md5_of("a"), "active"),
                                  ("sha256", sha256_of("b"), "active"),
                                  ("pdq", pdq_b, "active"), ("pdq", pdq_c, "withdrawn")]
    assert export(banks, "b", "te").splitlines() == [  # te has no status: active entries only
        f"pdq {pdq_a}", f"md5 {md5_of('a')}", f"sha256 {sha256_of('b')}", f"pdq {pdq_b}"]


def stopncii_record(value: str, status: str = "Active",
                    signal_type: str = "ImagePDQ") -> dict[str, object]:
    return {"lastModtimestamp": 1_700_000_000, "signalType": signal_type, "hashValue": value,
            "hashStatus": status, "caseNumbers": {"case-1": status}, "CSPFeedbacks": []}


def test_a_stopncii_file_imports_with_its_statuses(banks: BankService, tmp_path: Path) -> None:
    pdq_a, pdq_b = random_pdq(1), random_pdq(2)
    file = tmp_path / "stopncii.json"
    file.write_text(json.dumps({"hashRecords": [
        stopncii_record(pdq_a), stopncii_record(pdq_b.upper(), "Withdrawn"),
        stopncii_record(md5_of("v"), "Received", "VideoMD5")]}))
    banks.create("stopncii", "ncii_victim")

    banks.add("stopncii", read_entries(file, "stopncii"))

    assert values(banks, "stopncii") == [("pdq", pdq_a, "active"), ("pdq", pdq_b, "withdrawn"),
                                         ("md5", md5_of("v"), "active")]
    assert banks.entry("stopncii", "pdq", pdq_a).metadata == {
        "case_numbers": "case-1", "modified": "1700000000"}


GOOD_PDQ, GOOD_MD5 = random_pdq(20), md5_of("good")
CORRUPT_FILES = {
    "csv bad hex and unknown type": ("csv", "signal_type,value\n"
                                     f"pdq,{GOOD_PDQ}\npdq,{'g' * 64}\nmd5,{GOOD_MD5}\n"
                                     f"tmk,{GOOD_PDQ}\n", [3, 5]),
    "csv bad status": ("csv", f"signal_type,value,status\nmd5,{GOOD_MD5},gone\n", [2]),
    "csv bad metadata": ("csv", "signal_type,value,status,note,metadata\n"
                         f"md5,{GOOD_MD5},active,,{{}}\npdq,{GOOD_PDQ},active,,\"{{oops\"\n"
                         f"pdq,{random_pdq(21)},active,,[1]\n", [3, 4]),
    "csv without header": ("csv", f"pdq,{GOOD_PDQ}\n", [1]),
    "te bad lines": ("te", f"pdq {GOOD_PDQ}\npdq {GOOD_PDQ[:60]}\n\nurl http://x\n", [2, 4]),
    "stopncii not json": ("stopncii", '{"hashRecords": [', [1]),
    "stopncii bad record": ("stopncii", json.dumps({"hashRecords": [
        stopncii_record(GOOD_PDQ), stopncii_record(GOOD_PDQ, "Sleeping"),
        stopncii_record("ab", "Active")]}), [2, 3]),
}


@pytest.mark.parametrize(("fmt", "body", "lines"), CORRUPT_FILES.values(), ids=CORRUPT_FILES)
def test_a_corrupt_file_names_every_bad_line_and_imports_nothing(
    banks: BankService, tmp_path: Path, fmt: str, body: str, lines: list[int]
) -> None:
    banks.create("b", "ncii_victim")
    banks.add("b", [EntryInput("md5", md5_of("before"))])
    file = tmp_path / f"list.{fmt}"
    file.write_text(body)

    with pytest.raises(HashFileError, match="nothing imported") as error:
        banks.add("b", read_entries(file, fmt))

    reported = re.findall(rf"{re.escape(str(file))}:(\d+): ", str(error.value))
    assert [int(line) for line in reported] == lines
    assert values(banks, "b") == [("md5", md5_of("before"), "active")]


def test_a_file_that_is_not_utf8_is_refused(banks: BankService, tmp_path: Path) -> None:
    banks.create("b", "ncii_victim")
    file = tmp_path / "list.csv"
    file.write_bytes(f"signal_type,value\nmd5,{GOOD_MD5}\nmd5,caf\xe9\n".encode("latin-1"))
    with pytest.raises(HashFileError, match="not UTF-8"):
        banks.add("b", read_entries(file, "csv"))
    assert list(banks.entries("b")) == []


def test_a_file_that_is_not_utf8_names_the_bad_line(tmp_path: Path) -> None:
    file = tmp_path / "list.csv"
    file.write_bytes(f"signal_type,value\nmd5,{GOOD_MD5}\nmd5,caf\xe9\n".encode("latin-1"))
    with pytest.raises(HashFileError, match=r"list\.csv:3\b"):
        read_entries(file, "csv")


# --- the exchange ------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeStopNCII]:
    with FakeStopNCII() as fake:
        yield fake


def fetch_into(banks: BankService, name: str, server: FakeStopNCII) -> None:
    exchange = StopNCIIExchange(server.base_url, server.subscription_key, server.fetch_key,
                                page_size=3)
    for batch in exchange.fetch(banks.checkpoint(name)):
        banks.apply(name, batch)


def test_a_fetch_that_fails_midway_resumes_and_stores_every_record_once(
    banks: BankService, server: FakeStopNCII
) -> None:
    hashes = [random_pdq(n) for n in range(10)]
    for value in hashes:
        server.put(value)
    banks.create("stopncii", "ncii_victim", source="stopncii")
    server.fail_page(3)

    with pytest.raises(ExchangeError, match="HTTP 400"):
        fetch_into(banks, "stopncii", server)
    assert [v for _, v, _ in values(banks, "stopncii")] == hashes[:6]  # two pages kept

    server.recover()
    fetch_into(banks, "stopncii", server)

    entries = list(banks.entries("stopncii"))
    assert [e.value for e in entries] == hashes
    assert sorted(c.entry_id for c in banks.changes_since(0)) == [e.id for e in entries]


def test_a_later_withdrawn_or_deleted_status_from_the_exchange_stops_the_entry(
    banks: BankService, matcher: HashMatcher, server: FakeStopNCII
) -> None:
    hashes = [random_pdq(n) for n in range(5)]
    for value in hashes:
        server.put(value)
    banks.create("stopncii", "ncii_victim")
    fetch_into(banks, "stopncii", server)
    server.put(hashes[1], status="Withdrawn")
    server.put(hashes[2], status="Deleted")

    fetch_into(banks, "stopncii", server)
    matcher.refresh()

    assert values(banks, "stopncii") == [("pdq", hashes[0], "active"),
                                         ("pdq", hashes[1], "withdrawn"),
                                         ("pdq", hashes[3], "active"),
                                         ("pdq", hashes[4], "active")]
    assert [bool(matcher.match(content(h)).matches) for h in hashes] == [
        True, False, False, True, True]


# --- the screener ------------------------------------------------------------------------------


@dataclass
class FakeDetector:
    name: str
    field: str
    result: object
    version: str = "fake-1"

    def run(self, image: object, earlier: SignalSet) -> object:
        return self.result


def screener(matcher: HashMatcher, exposed: float = 0.0, face_age: float | None = None) -> Screener:
    """The real hash and bank detectors; fakes stand in for the models."""
    regions = [Region("FEMALE_BREAST_EXPOSED", exposed, (0, 0, 9, 9))] if exposed else []
    faces = [Face((10, 10, 90, 90), ("hog",), face_age, 0.01)] if face_age else []
    detectors = [
        HashDetector(), BankMatchDetector(matcher),
        FakeDetector("nudity.regions", "nudity", NudityRegions(regions)),
        FakeDetector("nudity.nsfw", "nsfw", NsfwScore(exposed, [exposed])),
        FakeDetector("faces", "faces", Faces(faces)),
    ]
    return Screener(ScreeningSettings(), detectors=detectors, matcher=matcher)


@pytest.fixture(scope="module")
def face_photo() -> bytes:
    return (FACES / "img1.jpg").read_bytes()


@pytest.mark.parametrize(("kind", "action", "labels"), [
    ("csam_known", Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR", "KNOWN_HASH"]),
    ("ncii_victim", Action.BLOCK, ["NCII_REAL_PERSON", "KNOWN_HASH"]),
    ("own_removals", Action.BLOCK, ["KNOWN_HASH"]),
])
def test_an_image_in_a_bank_is_blocked_by_its_bank_rule(
    banks: BankService, matcher: HashMatcher, face_photo: bytes, kind: str, action: Action,
    labels: list[str],
) -> None:
    banks.create("list", kind)
    banks.add("list", [EntryInput("pdq", hashes_of(face_photo).pdq)])
    matcher.refresh()

    verdict = screener(matcher).check_image(face_photo)

    assert verdict.action is action
    assert verdict.labels == labels
    assert [r.rule_id for r in verdict.reasons] == [f"bank.{kind}"]
    assert [b.name for b in banks.list()] == ["list"]  # a bank block is not copied again


def test_a_harmless_unmatched_image_is_not_blocked_by_a_bank(
    banks: BankService, matcher: HashMatcher, face_photo: bytes
) -> None:
    banks.create("known", "csam_known")
    banks.add("known", [EntryInput("pdq", hashes_of(face_photo).pdq)])
    matcher.refresh()

    verdict = screener(matcher).check_image((FACES / "img2.jpg").read_bytes())

    assert verdict.action is Action.ALLOW
    assert verdict.signals["bank_matches"]["matches"] == ()
    assert not [r for r in verdict.reasons if r.rule_id.startswith("bank.")]


def test_an_ncii_block_by_a_model_rule_adds_the_hashes_to_own_removals(
    banks: BankService, matcher: HashMatcher, face_photo: bytes
) -> None:
    hashes = hashes_of(face_photo)
    banks.create("unrelated", "ncii_victim")
    matcher.refresh()

    verdict = screener(matcher, exposed=0.95, face_age=40).check_image(face_photo, "edit_input")

    assert verdict.action is Action.BLOCK and verdict.labels == ["NCII_REAL_PERSON"]
    assert [r.rule_id for r in verdict.reasons] == ["ncii.edit_of_intimate_image"]
    assert banks.info("own_removals").kind is BankKind.OWN_REMOVALS
    assert values(banks, "own_removals") == [("md5", hashes.md5, "active"),
                                             ("sha256", hashes.sha256, "active"),
                                             ("pdq", hashes.pdq, "active")]
    assert {e.metadata["reason"] for e in banks.entries("own_removals")} == {
        "ncii.edit_of_intimate_image"}

    matcher.refresh()
    again = screener(matcher).check_image(face_photo)  # the re-upload, with no nudity seen

    assert again.action is Action.BLOCK
    assert [r.rule_id for r in again.reasons] == ["bank.own_removals"]


@pytest.mark.usefixtures("frozen_refresh")
def test_a_reupload_right_after_the_first_removal_is_caught_by_its_hash(
    matcher: HashMatcher, face_photo: bytes
) -> None:
    screener(matcher, exposed=0.95, face_age=40).check_image(face_photo, "edit_input")

    again = screener(matcher).check_image(face_photo)

    assert [r.rule_id for r in again.reasons] == ["bank.own_removals"]


# --- the command line --------------------------------------------------------------------------


def waakhond(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WAAKHOND_DATABASE_URL"}
    return subprocess.run([str(WAAKHOND), *args], capture_output=True, text=True, timeout=60,
                          env={**env, "WAAKHOND_DATA": str(tmp_path)}, check=False)


def test_cli_bank_import_match_and_withdraw(tmp_path: Path, face_photo: bytes) -> None:
    pdq = hashes_of(face_photo).pdq
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(image_bytes(FACES / "img1.jpg", Image.Transpose.ROTATE_90))
    (tmp_path / "list.csv").write_text(f"signal_type,value\npdq,{pdq}\n")

    assert waakhond(tmp_path, "bank", "create", "victims", "--kind", "ncii_victim").returncode == 0
    imported = waakhond(tmp_path, "bank", "import", "victims", str(tmp_path / "list.csv"))
    assert imported.returncode == 0 and "imported 1 entries" in imported.stdout

    found = waakhond(tmp_path, "match", str(rotated))
    assert found.returncode == 3, found.stderr
    assert "MATCH victims (ncii_victim) pdq" in found.stdout

    assert waakhond(tmp_path, "bank", "withdraw", "victims", pdq).returncode == 0
    gone = waakhond(tmp_path, "match", str(rotated))
    assert gone.returncode == 0, gone.stderr
    assert "MATCH" not in gone.stdout and "no match" in gone.stdout


def test_cli_a_bad_import_exits_2_and_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"signal_type,value\npdq,{GOOD_PDQ}\npdq,not-a-hash\n")
    banks = BankService(Database(f"sqlite:///{tmp_path / 'waakhond.db'}"))
    banks.create("victims", "ncii_victim")

    result = waakhond(tmp_path, "bank", "import", "victims", str(bad))

    assert result.returncode == 2
    assert f"{bad}:3:" in result.stderr and "nothing imported" in result.stderr
    assert list(banks.entries("victims")) == []
