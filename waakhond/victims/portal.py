"""The victim portal's back end: a person sends the hashes of their intimate images, computed
on their own device, and never the images. The hashes join the ``ncii_victim`` bank, so an
upload or a generated image that matches is blocked; the person gets a case number and a PIN
to check the submission or withdraw it.

The PIN is chosen here (people pick weak ones) and kept only as an Argon2id hash. Five wrong
PINs in a row lock the case number for an hour; an unknown case number and a wrong PIN give
the same answer, after the same Argon2 work, so neither the answer nor its timing tells which
case numbers exist.

Order of writes. BankService opens its own transaction for each call, so a submission takes
two: the submission row first, then the bank entries. If adding the entries fails, the new
row is deleted again (it is this request's alone, so that is always safe). If the process dies
in between, an inert row is left: its PIN was never shown to anyone, and the bank is untouched.
Adding the entries first would instead leave hashes blocking content that nobody can withdraw.
A withdrawal takes the bank entries out first and marks the row after, so a failure between
leaves the case ``active`` and the person's retry finishes it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import String, cast, delete, select
from sqlalchemy.orm import Session

from waakhond.accounts.passwords import hash_secret, verify_secret
from waakhond.audit import AuditLog
from waakhond.hashing.banks import BankError, BankKind, BankService, EntryInput
from waakhond.hashing.exchange import EntryStatus
from waakhond.hashing.signal_types import MIN_PDQ_QUALITY, signal_type
from waakhond.store import Database
from waakhond.store.models import VictimSubmission, aware, iso

VICTIM_BANK = "ncii_victim"
BANK_SOURCE = "waakhond victim portal"
MAX_HASHES = 200
LOCK_AFTER = 5  # wrong PINs in a row
LOCK_FOR = timedelta(hours=1)
# Crockford-like base32 without 0/O and 1/I: read aloud or copied by hand without mistakes.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PREFIX = "NCII"
GROUPS, GROUP_SIZE = 3, 4  # 12 characters: 60 random bits
PIN_DIGITS = 8
ACTOR = "victim"  # the audit log's actor: the person is anonymous

HashKind = Literal["pdq", "md5", "sha256"]


class VictimPortalError(ValueError):
    """The submission cannot be accepted as sent; the message says why, in plain words."""


class VictimNotFound(LookupError):
    """No case with this number and PIN (which of the two is wrong is not said)."""


class VictimLocked(Exception):
    """Too many wrong PINs: the case number is locked until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many wrong PINs: this case number is locked until "
                         f"{until:%Y-%m-%d %H:%M} UTC; try again after that")
        self.until = until


@dataclass(frozen=True)
class SubmittedHash:
    kind: HashKind
    value: str
    quality: int | None = None  # PDQ's own quality score, 0-100, from the person's device


@dataclass(frozen=True)
class VictimReceipt:
    reference: str
    pin: str  # shown once; only its hash is kept
    count: int


# --- validation and secrets --------------------------------------------------------------------


def _canonical(item: SubmittedHash, number: int) -> dict[str, str]:
    if item.kind not in ("pdq", "md5", "sha256"):
        raise VictimPortalError(f"hash {number}: unknown kind {item.kind!r}; "
                                "use pdq, md5 or sha256")
    try:
        value = signal_type(item.kind).validate(item.value)
    except ValueError:
        length = signal_type(item.kind).hex_length
        raise VictimPortalError(f"hash {number}: a {item.kind} hash is {length} characters "
                                "0-9 and a-f; this one is not") from None
    if item.quality is not None and not 0 <= item.quality <= 100:
        raise VictimPortalError(f"hash {number}: the PDQ quality is a number from 0 to 100")
    if item.kind == "pdq" and item.quality is not None and item.quality < MIN_PDQ_QUALITY:
        # The matcher ignores such hashes on uploads too: they match unrelated images.
        raise VictimPortalError(
            f"hash {number}: this image is too plain or too flat (PDQ quality {item.quality}, "
            f"below {MIN_PDQ_QUALITY}) to be recognised reliably, so it would block unrelated "
            "images. Its MD5 and SHA-256 hashes still block exact copies.")
    return {"kind": item.kind, "value": value}


def validate(hashes: Iterable[SubmittedHash]) -> list[dict[str, str]]:
    """The hashes in canonical form (lower-case hex), duplicates folded, in the order sent."""
    items = list(hashes)
    if len(items) > MAX_HASHES:
        raise VictimPortalError(f"send at most {MAX_HASHES} hashes at a time; you sent "
                                f"{len(items)}")
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for number, item in enumerate(items, 1):
        found = _canonical(item, number)
        unique.setdefault((found["kind"], found["value"]), found)
    if not unique:
        raise VictimPortalError("send at least one hash")
    return list(unique.values())


def new_reference() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_SIZE))
    groups = [chars[i:i + GROUP_SIZE] for i in range(0, len(chars), GROUP_SIZE)]
    return "-".join([PREFIX, *groups])


def canonical_reference(reference: str) -> str:
    """The case number as stored, however it was typed (case, spaces, dashes)."""
    chars = "".join(c for c in reference.upper() if c.isalnum())
    chars = chars.removeprefix(PREFIX)
    if len(chars) != GROUPS * GROUP_SIZE:
        return reference  # matches nothing, after the same work as any other miss
    return "-".join([PREFIX, *(chars[i:i + GROUP_SIZE] for i in range(0, len(chars), GROUP_SIZE))])


def new_pin() -> str:
    return f"{secrets.randbelow(10 ** PIN_DIGITS):0{PIN_DIGITS}d}"


# --- the portal --------------------------------------------------------------------------------


class VictimPortal:
    def __init__(self, db: Database, banks: BankService) -> None:
        self.db = db
        self.banks = banks
        self.audit = AuditLog(db)

    def submit(self, hashes: Iterable[SubmittedHash],
               now: datetime | None = None) -> VictimReceipt:
        found = validate(hashes)
        reference, pin = new_reference(), new_pin()
        self.banks.ensure(VICTIM_BANK, BankKind.NCII_VICTIM, BANK_SOURCE)
        pin_hash = hash_secret(pin)  # before the transaction: Argon2 takes a while
        with self.db.session() as session:
            session.add(VictimSubmission(reference=reference, pin_hash=pin_hash,
                                         hashes=found, status="active",
                                         created_at=now or datetime.now(UTC)))
        try:
            self.banks.add(VICTIM_BANK, [
                EntryInput(h["kind"], h["value"], metadata={"submission": reference})
                for h in found])
        except BaseException:
            # No receipt is given, so nobody could ever open or withdraw this row.
            with self.db.session() as session:
                session.execute(delete(VictimSubmission).where(
                    VictimSubmission.reference == reference))
            raise
        self.audit.append(ACTOR, "victim.submitted", reference, {"count": len(found)})
        return VictimReceipt(reference, pin, len(found))

    def status(self, reference: str, pin: str, now: datetime | None = None) -> dict[str, Any]:
        return self._describe(self._open(reference, pin, now or datetime.now(UTC)))

    def withdraw(self, reference: str, pin: str, now: datetime | None = None) -> dict[str, Any]:
        """Take the hashes out of the bank and close the case; again is harmless."""
        moment = now or datetime.now(UTC)
        row = self._open(reference, pin, moment)
        if row.status == "withdrawn":
            return self._describe(row)  # its entries went out before it was marked
        self._withdraw_entries(row)
        stored, first_time = self._mark_withdrawn(row.id, moment)
        if first_time:
            self.audit.append(ACTOR, "victim.withdrawn", stored.reference,
                              {"count": len(stored.hashes)})
        return self._describe(stored)

    def _withdraw_entries(self, row: VictimSubmission) -> None:
        shared = self._claimed_elsewhere(row)
        for item in row.hashes:
            if (item["kind"], item["value"]) in shared:
                continue  # another person's active submission still needs it blocked
            # Not in the bank (an operator deleted it): nothing left to withdraw.
            with contextlib.suppress(BankError):
                self.banks.set_status(VICTIM_BANK, item["kind"], item["value"],
                                      EntryStatus.WITHDRAWN)

    def _mark_withdrawn(self, row_id: int, moment: datetime) -> tuple[VictimSubmission, bool]:
        """The row marked withdrawn, and whether this call did it (not a concurrent one)."""
        with self.db.session() as session:
            stored = session.scalars(select(VictimSubmission).where(
                VictimSubmission.id == row_id).with_for_update()).one()
            first_time = stored.status != "withdrawn"
            stored.status = "withdrawn"
            stored.withdrawn_at = stored.withdrawn_at or moment
        return stored, first_time

    # --- PIN check and lock-out ---------------------------------------------------------------

    def _open(self, reference: str, pin: str, now: datetime) -> VictimSubmission:
        """The submission, if the PIN opens it; raises VictimNotFound or VictimLocked. The
        outcome is decided inside the transaction and raised after it commits, so a failure
        count is kept (raising inside would roll it back)."""
        with self.db.session() as session:
            row = session.scalars(select(VictimSubmission).where(
                VictimSubmission.reference == canonical_reference(reference))
                .with_for_update()).one_or_none()
            # Always one Argon2 check, a decoy one for an unknown case number.
            opened = verify_secret(row.pin_hash if row else None, "".join(pin.split()))
            locked_until = aware(row.locked_until) if row else None
            if row is None or (locked_until is not None and locked_until > now):
                pass  # a locked case counts no more failures: the lock is not prolonged
            elif opened:
                row.failed_pins, row.locked_until = 0, None
            else:
                _count_failure(row, now)
        if locked_until is not None and locked_until > now:
            raise VictimLocked(locked_until)
        if row is None or not opened:
            raise VictimNotFound("no case with this number and PIN")
        return row

    def _claimed_elsewhere(self, row: VictimSubmission) -> set[tuple[str, str]]:
        """Which of this submission's hashes another active submission also holds. Text
        search narrows the candidates in the database (JSON queries differ between SQLite
        and PostgreSQL); the exact check is done here."""
        mine = {(h["kind"], h["value"]) for h in row.hashes}
        claimed: set[tuple[str, str]] = set()
        with self.db.session() as session:
            for kind, value in mine:
                claimed |= {(kind, value) for other in _holding(session, row.id, value)
                            if {"kind": kind, "value": value} in other.hashes}
        return claimed

    def _describe(self, row: VictimSubmission) -> dict[str, Any]:
        return {"reference": row.reference, "status": row.status, "count": len(row.hashes),
                "created_at": iso(row.created_at), "withdrawn_at": iso(row.withdrawn_at),
                "hashes": [{**item, "active": self._matching(item)} for item in row.hashes]}

    def _matching(self, item: dict[str, str]) -> bool:
        """Whether the bank entry still blocks matching content."""
        try:
            entry = self.banks.entry(VICTIM_BANK, item["kind"], item["value"])
        except BankError:
            return False
        return entry.status == EntryStatus.ACTIVE and not entry.quarantined


def _count_failure(row: VictimSubmission, now: datetime) -> None:
    row.failed_pins += 1
    if row.failed_pins >= LOCK_AFTER:
        row.locked_until, row.failed_pins = now + LOCK_FOR, 0


def _holding(session: Session, own_id: int, value: str) -> list[VictimSubmission]:
    return list(session.scalars(select(VictimSubmission).where(
        VictimSubmission.id != own_id, VictimSubmission.status == "active",
        cast(VictimSubmission.hashes, String).contains(value, autoescape=True))))
