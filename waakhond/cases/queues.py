"""Cases and queues: what people must decide, in the order it must be decided.

Notices and the automated verdicts that need a person (``review``, and ``block_and_report``,
which a person confirms before anything is reported) become cases. Routing puts each in a
queue with a service-level deadline: child safety first and fastest, then non-consensual
intimate imagery (a TAKE IT DOWN request keeps its legal 48 hours), then trusted flaggers and
authority orders, then everything else. A reviewer claims the next case; a claim is one
conditional UPDATE, so two reviewers never get the same case, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from waakhond.store import Database
from waakhond.store.models import Case, aware, iso


class Source(StrEnum):
    NOTICE = "notice"
    DECISION = "decision"  # an automated gateway decision that needs a person
    COMPLAINT = "complaint"  # a complaint against a decision (DSA Art. 20)


@dataclass(frozen=True)
class Queue:
    name: str
    priority: int  # lower is sooner
    sla: timedelta


# Deadlines a serious service sets itself; the law's own (TAKE IT DOWN: 48 hours) is kept
# when it is sooner. Child safety within the hour: a report to the authorities may follow.
CHILD_SAFETY = Queue("child_safety", 0, timedelta(hours=1))
INTIMATE_IMAGERY = Queue("intimate_imagery", 1, timedelta(hours=24))
TRUSTED = Queue("trusted", 2, timedelta(hours=24))
GENERAL = Queue("general", 3, timedelta(hours=72))
# Complaints go to people who did not take the decision; a week is "without undue delay"
# for a second look, and the queue's alerts show any that wait longer.
COMPLAINTS = Queue("complaints", 3, timedelta(days=7))
QUEUES = {queue.name: queue
          for queue in (CHILD_SAFETY, INTIMATE_IMAGERY, TRUSTED, GENERAL, COMPLAINTS)}
_CHILD_LABELS = {"SEXUAL_MINOR", "POSSIBLE_MINOR"}
_INTIMATE_LABELS = {"NCII_REAL_PERSON"}
# How long before its deadline a case counts as due soon (an alert, not yet a miss).
DUE_SOON = timedelta(minutes=15)


@dataclass(frozen=True)
class Routing:
    """What routing looks at, whatever the case came from."""

    category: str | None = None  # a STATEMENT_CATEGORY_* key (notices)
    labels: tuple[str, ...] = ()  # verdict labels (automated decisions)
    trusted: bool = False  # a trusted flagger or an authority order
    intimate: bool = False  # a TAKE IT DOWN request
    legal_deadline: datetime | None = None
    complaint: bool = False


def route(routing: Routing) -> Queue:
    if routing.complaint:
        return COMPLAINTS
    if routing.category == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS" or (
            _CHILD_LABELS & set(routing.labels)):
        return CHILD_SAFETY
    if routing.intimate or _INTIMATE_LABELS & set(routing.labels):
        return INTIMATE_IMAGERY
    if routing.trusted:
        return TRUSTED
    return GENERAL


def open_case(session: Session, source: Source, source_reference: str,
              routing: Routing) -> str:
    """Add a case in the caller's transaction, so it exists exactly when its source does."""
    queue = route(routing)
    now = datetime.now(UTC)
    due = now + queue.sla
    if routing.legal_deadline is not None:
        due = min(due, routing.legal_deadline)
    reference = f"case_{secrets.token_hex(8)}"
    session.add(Case(reference=reference, source=source.value,
                     source_reference=source_reference, queue=queue.name,
                     priority=queue.priority, status="open", created_at=now, due_at=due))
    return reference



def _describe(case: Case) -> dict[str, Any]:
    return {"reference": case.reference, "source": case.source,
            "source_reference": case.source_reference, "queue": case.queue,
            "status": case.status, "assignee": case.assignee,
            "created_at": aware(case.created_at).isoformat(),
            "due_at": aware(case.due_at).isoformat()}


class Cases:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_next(self, reviewer: str, queue: str | None = None) -> dict[str, Any] | None:
        """Assign the most urgent open case to ``reviewer``; None when nothing is waiting.
        Candidates are tried in order; the conditional UPDATE lets exactly one reviewer win
        each, and the loser moves on to the next."""
        if queue is not None and queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}; use one of: {', '.join(QUEUES)}")
        query = select(Case.id).where(Case.status == "open")
        if queue is not None:
            query = query.where(Case.queue == queue)
        query = query.order_by(Case.priority, Case.due_at, Case.id).limit(20)
        while True:
            with self.db.session() as session:
                candidates = session.scalars(query).all()
            if not candidates:
                return None
            for case_id in candidates:
                if self._take(case_id, reviewer):
                    return self.get_by_id(case_id)

    def _take(self, case_id: int, reviewer: str) -> bool:
        with self.db.session() as session:
            taken = session.execute(
                update(Case).where(Case.id == case_id, Case.status == "open")
                .values(status="assigned", assignee=reviewer, assigned_at=datetime.now(UTC)))
            return taken.rowcount == 1  # type: ignore[attr-defined]

    def release(self, reference: str, reviewer: str) -> bool:
        """Give a case back to its queue; only its assignee can."""
        with self.db.session() as session:
            released = session.execute(
                update(Case).where(Case.reference == reference, Case.status == "assigned",
                                   Case.assignee == reviewer)
                .values(status="open", assignee=None, assigned_at=None))
            return released.rowcount == 1  # type: ignore[attr-defined]

    def get_by_id(self, case_id: int) -> dict[str, Any] | None:
        with self.db.session() as session:
            case = session.get(Case, case_id)
            return _describe(case) if case else None

    def get(self, reference: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            return _describe(case) if case else None

    def overview(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per queue: cases waiting, assigned, overdue and due soon (the SLA alerts), and the
        soonest deadline (the queue's SLA clock)."""
        now = now or datetime.now(UTC)
        counts: dict[str, dict[str, Any]] = {
            name: {"queue": name, "sla_hours": queue.sla.total_seconds() / 3600, "open": 0,
                   "assigned": 0, "overdue": 0, "due_soon": 0, "next_due_at": None}
            for name, queue in QUEUES.items()}
        undecided = Case.status.in_(("open", "assigned"))
        with self.db.session() as session:
            for name, status, number in session.execute(
                    select(Case.queue, Case.status, func.count()).where(undecided)
                    .group_by(Case.queue, Case.status)):
                counts[name][status] = number
            for name, due in session.execute(select(Case.queue, Case.due_at).where(undecided)):
                deadline = aware(due)
                assert deadline is not None
                soonest = counts[name]["next_due_at"]
                counts[name]["next_due_at"] = min(soonest or deadline, deadline)
                if deadline < now:
                    counts[name]["overdue"] += 1
                elif deadline - now < DUE_SOON:
                    counts[name]["due_soon"] += 1
        return [{**queue, "next_due_at": iso(queue["next_due_at"])} for queue in counts.values()]
