"""Sends statements of reasons to the Commission's Transparency Database (DSA Art. 24(5)).

Statements wait in the ``statements_of_reasons`` outbox, written with the decision, and go out
in batches of up to 100 to ``POST {base_url}/api/v1/statements``. Only a 201 stores a batch,
and the database stores nothing from a batch with any error in it, so:

- 422 naming statements (``errors.statement_<i>``): those are rejected for good (retrying
  cannot help: a person must fix the decision), the rest of the batch goes out again at once;
- 422 listing ``existing_puids`` of ours: an earlier 201 (or a time-out after storing) was lost
  on the way back; puids are random and never reused, so it is this very statement: it counts
  as stored, and the rest goes out again at once;
- anything else (429, 5xx, 401, a redirect, a time-out, no connection): the whole batch waits,
  with back-off.

Each batch is claimed before it is sent (one conditional UPDATE pushes its next attempt a lease
ahead), so two senders, in one process or several, never send the same statement at once; a
sender that dies mid-batch leaves it to be sent again when the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from waakhond.background import retry_delay
from waakhond.store import Database
from waakhond.store.models import StatementOfReasons, aware

API_PATH = "/api/v1/statements"
MAX_BATCH = 100  # the API's limit per call
STATUSES = ("pending", "stored", "rejected")


@dataclass(frozen=True)
class SubmitResult:
    stored: int = 0
    retrying: int = 0  # still pending: sent again at once, or after a back-off
    rejected: int = 0


@dataclass(frozen=True)
class _Claimed:
    id: int
    puid: str
    payload: dict[str, Any]
    attempts: int


@dataclass
class _Outcome:
    """What one answer means for each statement of the batch (by row id); a statement in none
    of the sets failed with ``error`` and backs off."""

    stored: set[int] = field(default_factory=set)
    rejected: dict[int, str] = field(default_factory=dict)
    again: set[int] = field(default_factory=set)  # not judged: in the next batch, no back-off
    error: str = ""

    def change(self, claimed: _Claimed, now: datetime) -> dict[str, Any]:
        if claimed.id in self.stored:
            return {"status": "stored", "stored_at": now, "last_error": ""}
        if claimed.id in self.rejected:
            return {"status": "rejected", "last_error": self.rejected[claimed.id]}
        if claimed.id in self.again:
            return {"next_attempt_at": now}
        attempts = claimed.attempts + 1
        return {"attempts": attempts, "next_attempt_at": now + retry_delay(attempts),
                "last_error": self.error}


class StatementSubmitter:
    def __init__(self, db: Database, base_url: str, token: str, batch_size: int = MAX_BATCH,
                 timeout_s: float = 30) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        self.db = db
        self.url = base_url.rstrip("/") + API_PATH
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        # Without Accept: application/json the API (Laravel) answers errors with a redirect.
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        # Far longer than one call can take, so a batch in flight is never claimed again.
        self._lease = timedelta(seconds=max(600, 4 * timeout_s))

    def submit_due(self, now: datetime | None = None) -> SubmitResult:
        """Send one batch of due statements (the oldest first) and record the answer."""
        now = now or datetime.now(UTC)
        batch = self._claim(now)
        if not batch:
            return SubmitResult()
        outcome = self._send(batch)
        self._record(batch, outcome, now)
        return SubmitResult(stored=len(outcome.stored),
                            retrying=len(batch) - len(outcome.stored) - len(outcome.rejected),
                            rejected=len(outcome.rejected))

    def _claim(self, now: datetime) -> list[_Claimed]:
        """Take up to a batch of due statements by pushing their next attempt a lease ahead.
        The UPDATE only takes rows still due when it writes, so of two senders each row goes to
        one; on PostgreSQL they skip each other's locked rows instead of waiting (SQLite has one
        writer at a time anyway). The batch is a MATERIALIZED CTE because PostgreSQL may run a
        LIMIT subquery again for every row it updates, and so take every due row."""
        due = (StatementOfReasons.status == "pending", StatementOfReasons.next_attempt_at <= now)
        oldest = (select(StatementOfReasons.id).where(*due)
                  .order_by(StatementOfReasons.next_attempt_at, StatementOfReasons.id)
                  .limit(self.batch_size).with_for_update(skip_locked=True)
                  .cte("oldest").prefix_with("MATERIALIZED"))
        claim = (update(StatementOfReasons)
                 .where(StatementOfReasons.id.in_(select(oldest.c.id)), *due)
                 .values(next_attempt_at=now + self._lease)
                 .returning(StatementOfReasons.id, StatementOfReasons.puid,
                            StatementOfReasons.payload, StatementOfReasons.attempts))
        with self.db.session() as session:
            rows = session.execute(claim, execution_options={"synchronize_session": False})
            return sorted((_Claimed(*row) for row in rows), key=lambda claimed: claimed.id)

    def _send(self, batch: list[_Claimed]) -> _Outcome:
        try:
            response = httpx.post(self.url, json={"statements": [c.payload for c in batch]},
                                  headers=self._headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:  # no connection, or a time-out: stored or not, unknown
            return _Outcome(error=f"{type(exc).__name__}: {exc}")
        if response.status_code == 201:
            return _Outcome(stored={c.id for c in batch})
        if response.status_code == 422 and (judged := _judge(batch, _errors(response))):
            return judged
        return _Outcome(error=f"HTTP {response.status_code}: {response.text[:500]}")

    def _record(self, batch: list[_Claimed], outcome: _Outcome, now: datetime) -> None:
        # Writes only, no read first: on SQLite a read-then-write transaction can fail at
        # once, without waiting, when another sender wrote in between.
        with self.db.session() as session:
            for claimed in batch:
                session.execute(update(StatementOfReasons).where(
                    StatementOfReasons.id == claimed.id, StatementOfReasons.status == "pending")
                    .values(**outcome.change(claimed, now)))

    def overview(self) -> dict[str, int]:
        """How many statements are in each status; ``failing`` counts the pending ones that
        have failed at least once (an endpoint or token problem shows there)."""
        with self.db.session() as session:
            counts = dict(session.execute(
                select(StatementOfReasons.status, func.count())
                .group_by(StatementOfReasons.status)).tuples().all())
            failing = session.scalar(select(func.count()).where(
                StatementOfReasons.status == "pending", StatementOfReasons.attempts > 0))
        return {**{status: counts.get(status, 0) for status in STATUSES}, "failing": failing or 0}

    def rejected(self, limit: int = 50) -> list[dict[str, Any]]:
        """The statements the database refused, newest first: each needs a person to correct
        its decision (a corrected statement is a new one, with a new puid)."""
        with self.db.session() as session:
            rows = session.scalars(
                select(StatementOfReasons).where(StatementOfReasons.status == "rejected")
                .order_by(StatementOfReasons.created_at.desc(), StatementOfReasons.id.desc())
                .limit(limit)).all()
            return [{"puid": row.puid, "decision": row.decision_reference,
                     "error": row.last_error, "statement": row.payload,
                     "created_at": aware(row.created_at).isoformat()} for row in rows]


def _errors(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    return errors if isinstance(errors, dict) else {}


def _judge(batch: list[_Claimed], errors: dict[str, Any]) -> _Outcome | None:
    """What a 422 says about each statement; None when it names none of ours (then the whole
    batch backs off: the fault may be on either side)."""
    rejected = {claimed.id: _reason(errors[key]) for index, claimed in enumerate(batch)
                if (key := f"statement_{index}") in errors}
    existing = errors.get("existing_puids")
    existing = {str(puid) for puid in existing} if isinstance(existing, list) else set()
    stored = {claimed.id for claimed in batch if claimed.puid in existing}
    if not rejected and not stored:
        return None
    again = {claimed.id for claimed in batch} - stored - rejected.keys()
    return _Outcome(stored=stored, rejected=rejected, again=again)


def _reason(field_errors: Any) -> str:
    if not isinstance(field_errors, dict):
        return str(field_errors)
    return "; ".join(f"{key}: {' '.join(map(str, messages))}"
                     for key, messages in field_errors.items())
