"""Banks: named hash lists with a kind, a source, a match distance and a roll-out ratio.

Every change to an entry is also written to the change log (``bank_changes``) in the same
transaction, so running matchers in any process pick it up by polling (see matcher.py).
Withdrawn and deleted entries stop matching at once; deleted ones are purged from the bank,
leaving only the change-log line that tells indexes to drop them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from waakhond.hashing.exchange import EntryStatus, Feedback, UpdateBatch
from waakhond.hashing.signal_types import MAX_DISTANCE, signal_type
from waakhond.store import Database
from waakhond.store.models import Bank, BankChange, BankEntry, MatchFeedback, utcnow


class BankKind(StrEnum):
    CSAM_KNOWN = "csam_known"  # verified child sexual abuse material (hotlists)
    NCII_VICTIM = "ncii_victim"  # hashes victims submitted (StopNCII, our victim portal)
    OWN_REMOVALS = "own_removals"  # what this service removed, so re-uploads are caught
    NEGATIVE = "negative"  # known-good content: a match here suppresses all other matches


OWN_REMOVALS_BANK = "own_removals"
_IDS_PER_QUERY = 10_000


class BankError(ValueError):
    """A bank operation that cannot be done as asked (unknown bank, bad value)."""


@dataclass(frozen=True)
class EntryInput:
    signal_type: str
    value: str
    status: EntryStatus = EntryStatus.ACTIVE
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class BankInfo:
    name: str
    kind: BankKind
    source: str
    match_distance: int
    enabled_ratio: float
    entries: dict[str, int] | None  # status -> count; None when not counted


@dataclass(frozen=True)
class EntryInfo:
    id: int
    bank: str
    kind: BankKind
    signal_type: str
    value: str
    status: str
    metadata: dict[str, Any]
    note: str
    quarantined: bool
    confirmed: int
    disputed: int


def _matchable(entry: BankEntry) -> bool:
    return entry.status == EntryStatus.ACTIVE and entry.quarantined_at is None


def _log(session: Session, entry: BankEntry) -> None:
    session.add(BankChange(entry_id=entry.id, signal_type=entry.signal_type,
                           matchable=_matchable(entry)))


def _info(entry: BankEntry) -> EntryInfo:
    return EntryInfo(entry.id, entry.bank.name, BankKind(entry.bank.kind), entry.signal_type,
                     entry.value, entry.status, dict(entry.metadata_), entry.note,
                     entry.quarantined_at is not None, entry.confirmed, entry.disputed)


class BankService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- banks ---------------------------------------------------------------------------

    def create(self, name: str, kind: str, source: str = "", match_distance: int = MAX_DISTANCE,
               enabled_ratio: float = 1.0) -> BankInfo:
        bank_kind = _kind(kind)
        if not 0 <= match_distance <= MAX_DISTANCE:
            raise BankError(f"match distance must be 0..{MAX_DISTANCE}")
        if not 0.0 <= enabled_ratio <= 1.0:
            raise BankError("enabled ratio must be between 0 and 1")
        with self.db.session() as session:
            if session.scalar(select(Bank).where(Bank.name == name)):
                raise BankError(f"a bank named {name!r} exists already")
            session.add(Bank(name=name, kind=bank_kind, source=source,
                             match_distance=match_distance, enabled_ratio=enabled_ratio))
        return self.info(name)

    def ensure(self, name: str, kind: BankKind, source: str) -> None:
        """Create the bank unless it exists (for banks the system fills itself)."""
        try:
            self.create(name, kind, source)
        except BankError:
            self._bank_kind(name)

    def info(self, name: str) -> BankInfo:
        for bank in self.list():
            if bank.name == name:
                return bank
        raise BankError(f"no bank named {name!r}")

    def list(self, with_counts: bool = True) -> list[BankInfo]:
        """Every bank, by name. Counting entries reads the whole entry table, so matchers,
        which poll this, leave the counts out."""
        with self.db.session() as session:
            banks = session.scalars(select(Bank).order_by(Bank.name)).all()
            counts: dict[int, dict[str, int]] = {bank.id: {} for bank in banks}
            if with_counts:
                rows = session.execute(select(BankEntry.bank_id, BankEntry.status, func.count())
                                       .group_by(BankEntry.bank_id, BankEntry.status))
                for bank_id, status, count in rows:
                    counts[bank_id][str(status)] = int(count)
            return [BankInfo(bank.name, BankKind(bank.kind), bank.source, bank.match_distance,
                             bank.enabled_ratio, counts[bank.id] if with_counts else None)
                    for bank in banks]

    def _bank_kind(self, name: str) -> BankKind:
        with self.db.session() as session:
            return BankKind(_bank(session, name).kind)

    # --- entries -------------------------------------------------------------------------

    def add(self, name: str, entries: Iterable[EntryInput]) -> int:
        """Add or update entries in one transaction: all of them, or none on any error."""
        count = 0
        with self.db.session() as session:
            bank = _bank(session, name)
            for item in entries:
                _upsert(session, bank, item)
                count += 1
        return count

    def apply(self, name: str, batch: UpdateBatch) -> int:
        """One page of an exchange fetch and its checkpoint, in one transaction: a fetch that
        fails later resumes after the last page stored, with nothing applied twice."""
        with self.db.session() as session:
            bank = _bank(session, name)
            for update in batch.updates:
                _upsert(session, bank, EntryInput(update.signal_type, update.value,
                                                  update.status, dict(update.metadata)))
            bank.checkpoint = batch.checkpoint
        return len(batch.updates)

    def checkpoint(self, name: str) -> str | None:
        with self.db.session() as session:
            return _bank(session, name).checkpoint

    def set_status(self, name: str, kind: str, value: str, status: EntryStatus) -> EntryInfo:
        """Withdraw or delete (purge) an entry, or make it active again."""
        with self.db.session() as session:
            entry = _entry(session, _bank(session, name), kind, value)
            _set_status(session, entry, status)
            return _info(entry)

    def entry(self, name: str, kind: str, value: str) -> EntryInfo:
        with self.db.session() as session:
            return _info(_entry(session, _bank(session, name), kind, value))

    def entries(self, name: str) -> Iterator[EntryInfo]:
        """Every entry of the bank, in the order added (for export)."""
        with self.db.session() as session:
            bank = _bank(session, name)
            query = select(BankEntry).where(BankEntry.bank_id == bank.id).order_by(BankEntry.id)
            for entry in session.scalars(query).yield_per(10_000):
                yield _info(entry)

    def lookup(self, entry_ids: Iterable[int]) -> dict[int, EntryInfo]:
        ids = list(entry_ids)
        found: dict[int, EntryInfo] = {}
        with self.db.session() as session:
            # In slices: Postgres takes at most 65,535 parameters in one statement.
            for first in range(0, len(ids), _IDS_PER_QUERY):
                rows = session.scalars(select(BankEntry).where(
                    BankEntry.id.in_(ids[first:first + _IDS_PER_QUERY])))
                found.update((entry.id, _info(entry)) for entry in rows)
        return found

    def exact_ids(self, values: dict[str, str]) -> list[int]:
        """Ids of matchable entries holding exactly one of these values (signal type ->
        value: MD5, SHA-256), in one query."""
        wanted = or_(*(and_(BankEntry.signal_type == kind, BankEntry.value == value)
                       for kind, value in values.items()))
        with self.db.session() as session:
            return list(session.scalars(select(BankEntry.id).where(
                wanted, BankEntry.status == EntryStatus.ACTIVE,
                BankEntry.quarantined_at.is_(None))))

    # --- match quality -------------------------------------------------------------------

    def feedback(self, entry_id: int, feedback: Feedback, by: str = "", note: str = "") -> None:
        """A reviewer's confirm or dispute of a match, counted on the entry."""
        with self.db.session() as session:
            entry = session.get(BankEntry, entry_id)
            if entry is None:
                raise BankError(f"no bank entry {entry_id}")
            session.add(MatchFeedback(entry_id=entry_id, feedback=feedback, by=by, note=note))
            if feedback is Feedback.CONFIRM:
                entry.confirmed += 1
            elif feedback is Feedback.DISPUTE:
                entry.disputed += 1

    def quarantine(self, entry_id: int, note: str) -> None:
        """Pause an entry that matches far more than usual, and say why, for a person to check."""
        with self.db.session() as session:
            entry = session.get(BankEntry, entry_id)
            if entry is None or entry.quarantined_at is not None:
                return
            entry.quarantined_at = utcnow()
            entry.note = f"{entry.note}\n{note}".strip()
            _log(session, entry)

    def release(self, name: str, kind: str, value: str) -> EntryInfo:
        with self.db.session() as session:
            entry = _entry(session, _bank(session, name), kind, value)
            entry.quarantined_at = None
            _log(session, entry)
            return _info(entry)

    def changes_since(self, change_id: int, limit: int = 100_000) -> list[BankChange]:
        with self.db.session() as session:
            return list(session.scalars(select(BankChange).where(BankChange.id > change_id)
                                        .order_by(BankChange.id).limit(limit)))

    def last_change(self) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.max(BankChange.id))) or 0

    def matchable_pdq(self, batch: int = 100_000) -> Iterator[list[tuple[int, str]]]:
        """Every matchable PDQ entry as (id, hex), in batches, for building an index."""
        with self.db.session() as session:
            query = select(BankEntry.id, BankEntry.value).where(
                BankEntry.signal_type == "pdq", BankEntry.status == EntryStatus.ACTIVE,
                BankEntry.quarantined_at.is_(None)).execution_options(yield_per=batch)
            for rows in session.execute(query).partitions():
                yield [(int(entry_id), value) for entry_id, value in rows]


def _kind(kind: str) -> BankKind:
    try:
        return BankKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in BankKind)
        raise BankError(f"unknown bank kind {kind!r}; known: {known}") from None


def _bank(session: Session, name: str) -> Bank:
    bank = session.scalar(select(Bank).where(Bank.name == name))
    if bank is None:
        raise BankError(f"no bank named {name!r}")
    return bank


def _entry(session: Session, bank: Bank, kind: str, value: str) -> BankEntry:
    signal = signal_type(kind)
    entry = session.scalar(select(BankEntry).where(
        BankEntry.bank_id == bank.id, BankEntry.signal_type == signal.name,
        BankEntry.value == signal.validate(value)))
    if entry is None:
        raise BankError(f"bank {bank.name!r} has no {signal.name} entry {value}")
    return entry


def _upsert(session: Session, bank: Bank, item: EntryInput) -> None:
    signal = signal_type(item.signal_type)
    value = signal.validate(item.value)
    entry = session.scalar(select(BankEntry).where(
        BankEntry.bank_id == bank.id, BankEntry.signal_type == signal.name,
        BankEntry.value == value))
    if entry is None:
        if item.status is EntryStatus.DELETED:
            return  # nothing to purge
        entry = BankEntry(bank_id=bank.id, signal_type=signal.name, value=value,
                          status=item.status, metadata_=item.metadata, note=item.note)
        session.add(entry)
        session.flush()  # assigns the id the change log refers to
        _log(session, entry)
        return
    entry.metadata_ = {**entry.metadata_, **item.metadata}
    entry.note = item.note or entry.note
    _set_status(session, entry, item.status)


def _set_status(session: Session, entry: BankEntry, status: EntryStatus) -> None:
    entry.status = status
    entry.changed_at = utcnow()
    _log(session, entry)
    if status is EntryStatus.DELETED:
        session.delete(entry)
