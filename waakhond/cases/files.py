"""A case file: everything a reviewer needs on one page. The case, what it is about (the
notice, the gateway's decision with every signal and reason, or the complaint and the
decision it contests), the decisions already taken, and the content kept for review."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.cases.decisions import describe
from waakhond.cases.queues import Source
from waakhond.store import Database
from waakhond.store.models import (
    Case,
    Complaint,
    DecisionRecord,
    Evidence,
    ModerationDecision,
    Notice,
    aware,
    iso,
)


def case_file(db: Database, reference: str) -> dict[str, Any] | None:
    with db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        if case is None:
            return None
        about = _ABOUT[Source(case.source)](session, case.source_reference)
        return {
            "reference": case.reference, "source": case.source, "queue": case.queue,
            "status": case.status, "assignee": case.assignee,
            "created_at": aware(case.created_at), "due_at": aware(case.due_at),
            "about": about,
            "decisions": [describe(row) for row in session.scalars(
                select(ModerationDecision).where(ModerationDecision.case_reference == reference)
                .order_by(ModerationDecision.id))],
            "content_items": _content_items(session, about.get("decision_reference")),
        }


def _notice(session: Session, reference: str) -> dict[str, Any]:
    notice = session.scalar(select(Notice).where(Notice.reference == reference))
    if notice is None:
        return {"reference": reference}
    return {"reference": notice.reference, "kind": notice.kind, "category": notice.category,
            "location": notice.location, "explanation": notice.explanation,
            "notifier": notice.notifier_name or notice.notifier_email or None,
            "trusted_flagger": notice.trusted_flagger, "authority": notice.authority,
            "received_at": iso(notice.received_at), "deadline_at": iso(notice.deadline_at)}


def _gateway_decision(session: Session, reference: str) -> dict[str, Any]:
    record = session.scalar(select(DecisionRecord).where(DecisionRecord.reference == reference))
    if record is None:
        return {"reference": reference}
    return {"reference": record.reference, "decision_reference": record.reference,
            "stage": record.stage, "action": record.action, "labels": record.labels,
            "reasons": record.reasons, "signals": record.signals or {},
            "country": record.country, "end_user": record.end_user,
            "policy_version": record.policy_version, "at": iso(record.at)}


def _complaint(session: Session, reference: str) -> dict[str, Any]:
    complaint = session.scalar(select(Complaint).where(Complaint.reference == reference))
    if complaint is None:
        return {"reference": reference}
    contested = session.scalar(select(ModerationDecision).where(
        ModerationDecision.reference == complaint.decision_reference))
    return {"reference": complaint.reference, "complainant": complaint.complainant,
            "explanation": complaint.explanation, "received_at": iso(complaint.received_at),
            "contested": describe(contested) if contested else None}


_ABOUT = {Source.NOTICE: _notice, Source.DECISION: _gateway_decision,
          Source.COMPLAINT: _complaint}


def _content_items(session: Session, decision_reference: str | None) -> list[dict[str, Any]]:
    """Ids and types of the content kept (encrypted) for a gateway decision; never bytes."""
    if decision_reference is None:
        return []
    return [{"id": item_id, "mime_type": mime_type} for item_id, mime_type in session.execute(
        select(Evidence.id, Evidence.mime_type)
        .where(Evidence.decision_reference == decision_reference).order_by(Evidence.id))]
