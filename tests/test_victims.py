"""The victim portal: hashes in, a case number and PIN out; status, withdrawal, the lock after
wrong PINs, and, end to end, that a submitted hash blocks the image and a withdrawn one no
longer does. The image is a harmless face photo (shared/data/faces), hashed as the browser
would: PDQ of the pixels, MD5 and SHA-256 of the file.

The portal tests run on SQLite and PostgreSQL (``db_url``); the API tests on the in-process
app (``client``)."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from waakhond.accounts.passwords import verify_secret
from waakhond.audit import AuditLog
from waakhond.config import IntakeLimits
from waakhond.hashing.banks import BankKind, BankService
from waakhond.hashing.exchange import EntryStatus
from waakhond.hashing.matcher import HashMatcher
from waakhond.intake import decode_image
from waakhond.signals.base import Hashes, SignalSet
from waakhond.signals.hashes import HashDetector
from waakhond.store import Database
from waakhond.store.models import VictimSubmission
from waakhond.victims import (
    SubmittedHash,
    VictimLocked,
    VictimNotFound,
    VictimPortal,
    VictimPortalError,
)
from waakhond.victims import portal as portal_module
from waakhond.victims.portal import LOCK_AFTER, LOCK_FOR, VICTIM_BANK

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "deepface"
REFERENCE = re.compile(r"^NCII(-[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{4}){3}$")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


PDQ = sha256("a pdq hash")  # any 64 hex characters will do where nothing is matched


@pytest.fixture
def db(db_url: str) -> Database:
    return Database(db_url)


@pytest.fixture
def banks(db: Database) -> BankService:
    return BankService(db)


@pytest.fixture
def portal(db: Database, banks: BankService) -> VictimPortal:
    return VictimPortal(db, banks)


def bank_state(banks: BankService, kind: str, value: str) -> str:
    return banks.entry(VICTIM_BANK, kind, value).status


# --- submitting --------------------------------------------------------------------------------


def test_a_submission_puts_the_hashes_in_the_bank_and_answers_a_case_number_and_pin(
    portal: VictimPortal, banks: BankService, db: Database
) -> None:
    receipt = portal.submit([SubmittedHash("pdq", PDQ.upper(), 90),
                             SubmittedHash("md5", md5("photo")),
                             SubmittedHash("md5", md5("photo").upper()),  # the same, folded
                             SubmittedHash("sha256", sha256("photo"))])

    assert REFERENCE.match(receipt.reference)
    assert re.fullmatch(r"\d{8}", receipt.pin)
    assert receipt.count == 3
    info = banks.info(VICTIM_BANK)
    assert (info.kind, info.source) == (BankKind.NCII_VICTIM, "waakhond victim portal")
    assert [(e.signal_type, e.value, e.status, e.metadata) for e in banks.entries(VICTIM_BANK)] \
        == [(kind, value, "active", {"submission": receipt.reference})
            for kind, value in [("pdq", PDQ), ("md5", md5("photo")),
                                ("sha256", sha256("photo"))]]
    with db.session() as session:
        row = session.scalars(select(VictimSubmission)).one()
        assert receipt.pin not in row.pin_hash and verify_secret(row.pin_hash, receipt.pin)
        assert row.hashes == [{"kind": "pdq", "value": PDQ},
                              {"kind": "md5", "value": md5("photo")},
                              {"kind": "sha256", "value": sha256("photo")}]


def test_case_numbers_and_pins_differ_every_time(portal: VictimPortal) -> None:
    receipts = [portal.submit([SubmittedHash("md5", md5(str(n)))]) for n in range(3)]

    assert len({r.reference for r in receipts}) == len({r.pin for r in receipts}) == 3


@pytest.mark.parametrize(("hashes", "message"), [
    ([], "at least one hash"),
    ([SubmittedHash("md5", "0" * 31)], "hash 1: a md5 hash is 32 characters"),
    ([SubmittedHash("md5", md5("a")), SubmittedHash("sha256", md5("b"))],
     "hash 2: a sha256 hash is 64 characters"),
    ([SubmittedHash("pdq", "g" * 64, 90)], "hash 1: a pdq hash is 64 characters"),
    ([SubmittedHash("pdq", PDQ, 49)], "too plain or too flat"),
    ([SubmittedHash("pdq", PDQ, 101)], "from 0 to 100"),
    ([SubmittedHash("md5", md5(str(n))) for n in range(201)], "at most 200 hashes"),
])
def test_a_submission_that_cannot_work_is_refused_with_the_reason_and_nothing_is_stored(
    portal: VictimPortal, db: Database, hashes: list[SubmittedHash], message: str
) -> None:
    with pytest.raises(VictimPortalError, match=message):
        portal.submit(hashes)

    with db.session() as session:
        assert session.scalars(select(VictimSubmission)).all() == []


def test_a_pdq_of_quality_50_or_of_unknown_quality_is_accepted(portal: VictimPortal) -> None:
    receipt = portal.submit([SubmittedHash("pdq", PDQ, 50),
                             SubmittedHash("pdq", sha256("another"))])

    assert receipt.count == 2


def test_a_failure_while_adding_to_the_bank_leaves_no_submission(
    portal: VictimPortal, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> int:
        raise OSError("database went away")

    monkeypatch.setattr(portal.banks, "add", broken)

    with pytest.raises(OSError):
        portal.submit([SubmittedHash("md5", md5("photo"))])

    with db.session() as session:
        assert session.scalars(select(VictimSubmission)).all() == []
    assert AuditLog(db).entries() == []


# --- status and withdrawal ---------------------------------------------------------------------


def test_the_status_shows_each_hash_and_whether_it_still_blocks(portal: VictimPortal) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo")),
                             SubmittedHash("sha256", sha256("photo"))], now=T0)

    found = portal.status(receipt.reference, receipt.pin)

    assert found == {"reference": receipt.reference, "status": "active", "count": 2,
                     "created_at": T0.isoformat(), "withdrawn_at": None,
                     "hashes": [{"kind": "md5", "value": md5("photo"), "active": True},
                                {"kind": "sha256", "value": sha256("photo"), "active": True}]}


def test_a_case_number_typed_loosely_still_opens_the_case(portal: VictimPortal) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo"))])
    typed = receipt.reference.lower().replace("-", " ")

    assert portal.status(typed, f" {receipt.pin[:4]} {receipt.pin[4:]} ")["status"] == "active"


def test_a_withdrawal_takes_the_hashes_out_of_the_bank_once(
    portal: VictimPortal, banks: BankService, db: Database
) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo")),
                             SubmittedHash("pdq", PDQ, 80)], now=T0)

    first = portal.withdraw(receipt.reference, receipt.pin, now=T0 + timedelta(days=1))
    again = portal.withdraw(receipt.reference, receipt.pin, now=T0 + timedelta(days=2))

    assert first == again
    assert first["status"] == "withdrawn"
    assert first["withdrawn_at"] == (T0 + timedelta(days=1)).isoformat()
    assert [h["active"] for h in first["hashes"]] == [False, False]
    assert bank_state(banks, "md5", md5("photo")) == EntryStatus.WITHDRAWN
    assert bank_state(banks, "pdq", PDQ) == EntryStatus.WITHDRAWN
    audit = [(e["actor"], e["action"], e["subject"], e["details"])
             for e in AuditLog(db).entries()]
    assert audit == [("victim", "victim.submitted", receipt.reference, {"count": 2}),
                     ("victim", "victim.withdrawn", receipt.reference, {"count": 2})]


def test_a_hash_two_people_sent_keeps_blocking_until_both_withdraw(
    portal: VictimPortal, banks: BankService
) -> None:
    first = portal.submit([SubmittedHash("md5", md5("shared")),
                           SubmittedHash("md5", md5("first only"))])
    second = portal.submit([SubmittedHash("md5", md5("shared"))])

    portal.withdraw(first.reference, first.pin)

    assert bank_state(banks, "md5", md5("first only")) == EntryStatus.WITHDRAWN
    assert bank_state(banks, "md5", md5("shared")) == EntryStatus.ACTIVE
    assert portal.status(second.reference, second.pin)["hashes"][0]["active"] is True

    portal.withdraw(second.reference, second.pin)

    assert bank_state(banks, "md5", md5("shared")) == EntryStatus.WITHDRAWN


def test_submitting_a_withdrawn_hash_again_makes_it_block_again(
    portal: VictimPortal, banks: BankService
) -> None:
    first = portal.submit([SubmittedHash("md5", md5("photo"))])
    portal.withdraw(first.reference, first.pin)

    portal.submit([SubmittedHash("md5", md5("photo"))])

    assert bank_state(banks, "md5", md5("photo")) == EntryStatus.ACTIVE


# --- wrong PINs --------------------------------------------------------------------------------


def test_a_wrong_pin_and_an_unknown_case_number_get_the_same_answer(
    portal: VictimPortal,
) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo"))])
    wrong = f"{(int(receipt.pin) + 1) % 10**8:08d}"

    with pytest.raises(VictimNotFound) as wrong_pin:
        portal.status(receipt.reference, wrong)
    with pytest.raises(VictimNotFound) as unknown:
        portal.status("NCII-AAAA-AAAA-AAAA", receipt.pin)
    with pytest.raises(VictimNotFound):
        portal.withdraw(receipt.reference, wrong)

    assert str(wrong_pin.value) == str(unknown.value)


def test_an_unknown_case_number_still_costs_a_pin_check(
    portal: VictimPortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str | None] = []

    def spy(stored: str | None, secret: str) -> bool:
        checked.append(stored)
        return verify_secret(stored, secret)

    monkeypatch.setattr(portal_module, "verify_secret", spy)

    with pytest.raises(VictimNotFound):
        portal.status("NCII-AAAA-AAAA-AAAA", "12345678")

    assert checked == [None]  # verify_secret(None, ...) checks against a decoy hash


def wrong_pins(portal: VictimPortal, reference: str, count: int, now: datetime) -> None:
    for _ in range(count):
        with pytest.raises(VictimNotFound):
            portal.status(reference, "not the pin", now=now)


def test_five_wrong_pins_lock_the_case_for_an_hour_even_for_the_right_pin(
    portal: VictimPortal, banks: BankService
) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo"))])
    wrong_pins(portal, receipt.reference, LOCK_AFTER, T0)

    for moment in (T0, T0 + LOCK_FOR - timedelta(seconds=1)):
        with pytest.raises(VictimLocked) as locked:
            portal.status(receipt.reference, receipt.pin, now=moment)
        assert locked.value.until == T0 + LOCK_FOR
        assert "locked until 2030-01-01 13:00 UTC" in str(locked.value)
    with pytest.raises(VictimLocked):
        portal.withdraw(receipt.reference, receipt.pin, now=T0)
    assert bank_state(banks, "md5", md5("photo")) == EntryStatus.ACTIVE

    after = T0 + LOCK_FOR
    assert portal.status(receipt.reference, receipt.pin, now=after)["status"] == "active"


def test_wrong_pins_while_locked_do_not_prolong_the_lock(portal: VictimPortal) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo"))])
    wrong_pins(portal, receipt.reference, LOCK_AFTER, T0)

    for _ in range(LOCK_AFTER):
        with pytest.raises(VictimLocked):
            portal.status(receipt.reference, "not the pin", now=T0 + timedelta(minutes=30))

    assert portal.status(receipt.reference, receipt.pin, now=T0 + LOCK_FOR)["count"] == 1


def test_the_right_pin_resets_the_count_of_wrong_ones(portal: VictimPortal) -> None:
    receipt = portal.submit([SubmittedHash("md5", md5("photo"))])
    wrong_pins(portal, receipt.reference, LOCK_AFTER - 1, T0)
    portal.status(receipt.reference, receipt.pin, now=T0)
    wrong_pins(portal, receipt.reference, LOCK_AFTER - 1, T0)

    assert portal.status(receipt.reference, receipt.pin, now=T0)["status"] == "active"


# --- the API -----------------------------------------------------------------------------------


def submit(client: TestClient, *hashes: dict[str, Any]) -> Any:
    return client.post("/v1/victims/submissions", json={"hashes": list(hashes)})


def pin_header(pin: str) -> dict[str, str]:
    return {"X-Victim-PIN": pin}


def test_the_api_submits_shows_and_withdraws(client: TestClient) -> None:
    answer = submit(client, {"kind": "md5", "value": md5("photo")},
                    {"kind": "pdq", "value": PDQ, "quality": 77})
    assert answer.status_code == 201, answer.text
    receipt = answer.json()
    assert receipt["count"] == 2 and REFERENCE.match(receipt["reference"])
    assert receipt["reference"] in receipt["message"] and receipt["pin"] in receipt["message"]
    path = f"/v1/victims/submissions/{receipt['reference']}"

    shown = client.get(path, headers=pin_header(receipt["pin"]))
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "active"
    assert [h["active"] for h in shown.json()["hashes"]] == [True, True]

    withdrawn = client.post(f"{path}/withdraw", headers=pin_header(receipt["pin"]))
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert [h["active"] for h in withdrawn.json()["hashes"]] == [False, False]


def error(answer: Any) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def test_the_api_refuses_bad_hashes_with_the_reason(client: TestClient) -> None:
    flat = submit(client, {"kind": "pdq", "value": PDQ, "quality": 10})
    assert error(flat) == (400, "invalid_submission")
    assert "too plain or too flat" in flat.json()["error"]["message"]
    assert error(submit(client, {"kind": "md5", "value": PDQ})) == (400, "invalid_submission")
    assert error(submit(client, {"kind": "jpeg", "value": PDQ})) == (400, "invalid_request")
    assert error(client.post("/v1/victims/submissions", json={"hashes": []})) == (
        400, "invalid_request")


def test_the_api_answers_404_for_a_wrong_pin_and_429_once_locked(client: TestClient) -> None:
    receipt = submit(client, {"kind": "md5", "value": md5("photo")}).json()
    path = f"/v1/victims/submissions/{receipt['reference']}"

    assert error(client.get("/v1/victims/submissions/NCII-AAAA-AAAA-AAAA",
                            headers=pin_header(receipt["pin"]))) == (404, "not_found")
    for _ in range(LOCK_AFTER):
        assert error(client.get(path, headers=pin_header("00000000x"))) == (404, "not_found")
    locked = client.get(path, headers=pin_header(receipt["pin"]))
    assert error(locked) == (429, "case_locked")
    assert "Try again after" in locked.json()["error"]["message"]
    assert error(client.post(f"{path}/withdraw", headers=pin_header(receipt["pin"]))) == (
        429, "case_locked")
    assert error(client.get(path)) == (400, "invalid_request")  # no PIN at all


def test_the_api_limits_submissions_per_address(client: TestClient) -> None:
    answers = [submit(client, {"kind": "md5", "value": md5(str(n))}).status_code
               for n in range(11)]

    assert answers == [201] * 10 + [429]


# --- end to end: the image is blocked, then no longer ------------------------------------------


@pytest.fixture(scope="module")
def face_photo() -> bytes:
    path = FACES / "img1.jpg"
    if not path.exists():
        pytest.skip(f"no test photo at {path}")
    return path.read_bytes()


def hashes_of(data: bytes) -> Hashes:
    return HashDetector().run(decode_image(data, IntakeLimits()), SignalSet())


def reencoded(data: bytes) -> bytes:
    """Another file of the same picture: MD5 and SHA-256 differ, PDQ is close."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def test_a_submitted_photo_is_matched_and_a_withdrawn_one_no_longer(
    client: TestClient, face_photo: bytes
) -> None:
    hashes = hashes_of(face_photo)  # what the person's browser computes
    copy = hashes_of(reencoded(face_photo))
    assert hashes.pdq_quality >= 50 and copy.md5 != hashes.md5
    matcher = HashMatcher(BankService(client.gateway.decisions.db))  # type: ignore[attr-defined]
    assert matcher.match(hashes).matches == ()

    receipt = submit(client, {"kind": "pdq", "value": hashes.pdq,
                              "quality": hashes.pdq_quality},
                     {"kind": "md5", "value": hashes.md5},
                     {"kind": "sha256", "value": hashes.sha256}).json()
    matcher.refresh()

    for upload, signals in (("the same file", {"pdq", "md5", "sha256"}), ("a copy", {"pdq"})):
        found = matcher.match(hashes if upload == "the same file" else copy).matches
        assert {(m.bank, m.kind) for m in found} == {(VICTIM_BANK, "ncii_victim")}, upload
        assert {m.signal_type for m in found} == signals, upload
        assert {m.metadata["submission"] for m in found} == {receipt["reference"]}

    withdrawn = client.post(f"/v1/victims/submissions/{receipt['reference']}/withdraw",
                            headers=pin_header(receipt["pin"]))
    assert withdrawn.status_code == 200, withdrawn.text
    matcher.refresh()

    assert matcher.match(hashes).matches == ()
    assert matcher.match(copy).matches == ()
