"""Complaints against decisions (DSA Art. 20), from the affected user or the notifier.

A complaint opens with the decision's reference and the secret its complainant was given: the
affected user's came with the statement of reasons, the notifier's is the notice's status
secret. It stays possible for six months after the decision. A complaint becomes a case in
the complaints queue, and a person other than the one who took the decision answers it. A
reversal undoes what the decision did: the platform restores the content (webhook), removed
hashes stop matching, a suspension is lifted; a wrongly declined notice goes back to a queue
so someone decides the restriction.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.audit import AuditLog
from waakhond.cases.decisions import (
    COMPLAINT_WINDOW,
    DecisionError,
    Effects,
    Removals,
    digest,
    hold,
)
from waakhond.cases.queues import Routing, Source, open_case
from waakhond.hashing.banks import BankService
from waakhond.store import Database
from waakhond.store.models import Case, Complaint, ModerationDecision, Notice, aware, iso
from waakhond.webhooks.delivery import enqueue

# What every answer ends with (Art. 20(5), 21).
FURTHER_REDRESS = ("If you disagree, you can turn to a certified out-of-court dispute "
                   "settlement body (DSA Art. 21) or to a court.")


class ComplaintOutcome(StrEnum):
    UPHELD = "upheld"  # the decision stands
    REVERSED = "reversed"


@dataclass(frozen=True)
class ComplaintReceipt:
    reference: str
    status_secret: str
    complainant: str



def _complainant(session: Session, decision: ModerationDecision, secret: str) -> str | None:
    """Whose secret this is: the affected user's, the notifier's, or nobody's."""
    if decision.complaint_secret_sha256 and hmac.compare_digest(
            decision.complaint_secret_sha256, digest(secret)):
        return "affected_user"
    notice = session.scalar(select(Notice).where(
        Notice.decision_reference == decision.reference))
    if notice and hmac.compare_digest(notice.status_secret_sha256, digest(secret)):
        return "notifier"
    return None


def _decision(session: Session, reference: str) -> ModerationDecision | None:
    return session.scalar(select(ModerationDecision).where(
        ModerationDecision.reference == reference))


class Complaints:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.removals = Removals(BankService(db))

    def receive(self, decision_reference: str, secret: str, explanation: str,
                now: datetime | None = None) -> ComplaintReceipt:
        if not explanation.strip():
            raise DecisionError("say why the decision is wrong")
        now = now or datetime.now(UTC)
        with self.db.session() as session:
            decision = _decision(session, decision_reference)
            complainant = _complainant(session, decision, secret) if decision else None
            if decision is None or complainant is None:
                raise LookupError("no decision with this reference and secret")
            closes = aware(decision.decided_at) + COMPLAINT_WINDOW
            if now > closes:
                raise DecisionError(f"complaints about this decision closed on "
                                    f"{closes.date().isoformat()} (six months)")
            if decision.reversed_at is not None:
                raise DecisionError("this decision has already been reversed")
            reference, status_secret = f"cmp_{secrets.token_hex(10)}", secrets.token_urlsafe(24)
            session.add(Complaint(reference=reference, decision_reference=decision_reference,
                                  complainant=complainant, explanation=explanation,
                                  status_secret_sha256=digest(status_secret), received_at=now))
            open_case(session, Source.COMPLAINT, reference, Routing(complaint=True))
        return ComplaintReceipt(reference, status_secret, complainant)

    def status(self, reference: str, secret: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            complaint = session.scalar(select(Complaint).where(Complaint.reference == reference))
            if complaint is None or not hmac.compare_digest(complaint.status_secret_sha256,
                                                            digest(secret)):
                return None
            return _describe(complaint)

    def decide(self, case_reference: str, reviewer: str, outcome: ComplaintOutcome,
               answer: str) -> dict[str, Any]:
        if not answer.strip():
            raise DecisionError("explain the answer to the complainant")
        effects = Effects()
        with self.db.session() as session:
            case = hold(session, case_reference, reviewer)
            complaint, decision = self._parties(session, case, reviewer)
            complaint.status, complaint.outcome = "decided", outcome.value
            complaint.answer, complaint.decided_by = answer, reviewer
            complaint.decided_at = datetime.now(UTC)
            if outcome is ComplaintOutcome.REVERSED and decision.outcome == "no_action":
                decision.reversed_at = complaint.decided_at
                _reopen(session, decision)
            elif outcome is ComplaintOutcome.REVERSED:
                effects.undo(session, decision, complaint.decided_at)
            enqueue(session, "complaint.decided", {
                **_describe(complaint), "decision": decision.reference})
            described = _describe(complaint)
        self.removals.apply(effects, decision.reference)
        self.audit.append(reviewer, "complaint.decide", complaint.reference,
                          {"decision": decision.reference, "outcome": outcome.value})
        return described

    @staticmethod
    def _parties(session: Session, case: Case,
                 reviewer: str) -> tuple[Complaint, ModerationDecision]:
        if case.source != Source.COMPLAINT:
            raise DecisionError(f"case {case.reference} is not a complaint")
        complaint = session.scalar(select(Complaint).where(
            Complaint.reference == case.source_reference))
        assert complaint is not None
        decision = _decision(session, complaint.decision_reference)
        assert decision is not None
        if decision.decided_by == reviewer:
            raise DecisionError("a complaint is decided by someone other than the person who "
                                "took the decision; release the case")
        return complaint, decision


def _reopen(session: Session, decision: ModerationDecision) -> None:
    """A notice declined in error: it goes back to a queue for a restriction decision."""
    notice = session.scalar(select(Notice).where(
        Notice.decision_reference == decision.reference))
    if notice is None:
        return
    notice.status = "reopened"
    open_case(session, Source.NOTICE, notice.reference, Routing(
        category=notice.category, trusted=notice.trusted_flagger is not None,
        intimate=notice.kind == "take_it_down", legal_deadline=None))


def _describe(complaint: Complaint) -> dict[str, Any]:
    return {"reference": complaint.reference, "complainant": complaint.complainant,
            "status": complaint.status, "outcome": complaint.outcome,
            "answer": (f"{complaint.answer} {FURTHER_REDRESS}" if complaint.answer else None),
            "received_at": iso(complaint.received_at), "decided_at": iso(complaint.decided_at),
            "decided_by_a_person": complaint.decided_at is not None}
