"""An append-only, hash-chained audit log.

Each entry's hash covers its own fields and the previous entry's hash, so editing or removing
any entry breaks every hash after it, and the sequence numbers have no gaps, so a removed
entry shows even where someone recomputed the chain after it. What the chain alone cannot
show is the newest entries cut off the end: publish ``head()`` somewhere the database's
administrators cannot rewrite (a ticket, an e-mail to the DPO) and compare later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from waakhond.store import Database
from waakhond.store.models import AuditEntry

GENESIS = "0" * 64
# PostgreSQL: appends take this transaction-scoped advisory lock, so writers queue instead of
# racing for the next number. SQLite writes one at a time anyway; there two writers may still
# read the same last entry, and the loser of the unique sequence number tries again.
_POSTGRES_LOCK = 0x57A4_A0D1
_ATTEMPTS = 10


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head: str
    problem: str | None = None  # the first entry that does not check out, and why


def _digest(seq: int, at: datetime, actor: str, action: str, subject: str,
            details: dict[str, Any], previous_hash: str) -> str:
    moment = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    canonical = json.dumps([seq, moment.isoformat(timespec="microseconds"), actor, action,
                            subject, details, previous_hash],
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, actor: str, action: str, subject: str = "",
               details: dict[str, Any] | None = None) -> int:
        """Add an entry; returns its sequence number."""
        details = json.loads(json.dumps(details or {}))  # stored exactly as it is hashed
        for attempt in range(_ATTEMPTS):
            try:
                return self._append(actor, action, subject, details)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _append(self, actor: str, action: str, subject: str, details: dict[str, Any]) -> int:
        with self.db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                {"key": _POSTGRES_LOCK})
            last = session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
            seq = last.seq + 1 if last else 1
            previous = last.entry_hash if last else GENESIS
            at = datetime.now(UTC)
            session.add(AuditEntry(
                seq=seq, at=at, actor=actor, action=action, subject=subject, details=details,
                previous_hash=previous,
                entry_hash=_digest(seq, at, actor, action, subject, details, previous)))
        return seq

    def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        with self.db.session() as session:
            query = select(AuditEntry).order_by(AuditEntry.seq.desc())
            rows = session.scalars(query.limit(last) if last else query).all()
            return [_describe(row) for row in reversed(rows)]

    def about(self, subject: str, action: str) -> list[dict[str, Any]]:
        """Every entry of one kind about one subject, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(select(AuditEntry).where(
                AuditEntry.subject == subject, AuditEntry.action == action)
                .order_by(AuditEntry.seq))
            return [_describe(row) for row in rows]

    def verify(self) -> Verification:
        """Walk the whole chain; report the first entry that does not check out."""
        previous, count = GENESIS, 0
        with self.db.session() as session:
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
                count += 1
                problem = _problem(entry, count, previous)
                if problem:
                    return Verification(False, count, previous, problem)
                previous = entry.entry_hash
        return Verification(True, count, previous)

    def head(self) -> str:
        with self.db.session() as session:
            last = session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
            return last.entry_hash if last else GENESIS


def _describe(entry: AuditEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": entry.at.isoformat(), "actor": entry.actor,
            "action": entry.action, "subject": entry.subject, "details": entry.details,
            "hash": entry.entry_hash}


def _problem(entry: AuditEntry, expected_seq: int, previous: str) -> str | None:
    if entry.seq != expected_seq:
        return f"entry {expected_seq} is missing (the next one is {entry.seq})"
    if entry.previous_hash != previous:
        return f"entry {entry.seq} does not follow the entry before it (removed or rewritten)"
    recomputed = _digest(entry.seq, entry.at, entry.actor, entry.action, entry.subject,
                         entry.details, entry.previous_hash)
    if recomputed != entry.entry_hash:
        return f"entry {entry.seq} was changed after it was written"
    return None
