"""What the gateway keeps: every decision with its reasons, every image it let through with
its marks, and (only when configured) reported content, encrypted, with every access logged.

No content bytes are stored by default. For the verdicts a person must look at (``review``,
and ``block_and_report`` before anything is reported) the signals and hashes are kept; with
``WAAKHOND_EVIDENCE_KEY`` set (``./run`` makes one on first start) the content itself is kept
too, encrypted with that key (Fernet: AES-128-CBC + HMAC-SHA256), for the reviewer's blurred
preview and for the authorities.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from waakhond.audit import AuditLog
from waakhond.cases.decisions import AutomatedRestriction, restrict_automatically
from waakhond.cases.queues import Routing, Source, open_case
from waakhond.core import Action, Verdict
from waakhond.store import Database
from waakhond.store.models import (
    DecisionRecord,
    Evidence,
    GenerationRecord,
    iso,
)

# Automated verdicts a person looks at: "review" by definition, and "block_and_report", which
# a person confirms before anything is reported to the authorities.
NEEDS_A_PERSON = frozenset({Action.REVIEW, Action.BLOCK_AND_REPORT})


class Stage(StrEnum):
    """What a decision was about."""

    PROMPT = "prompt"  # a prompt or edit instruction (with its input photo)
    OUTPUT = "output"  # an image the generator made, before anyone saw it
    IMAGE = "image"  # an image a client asked us to screen
    ACCESS = "access"  # a request refused for the user's tier, not for its content


def new_reference(kind: str) -> str:
    """Short, unguessable ids for people to quote: ``dec_...``, ``req_...``, ``gen_...``."""
    return f"{kind}_{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Requester:
    """Who asked, as the decision log records it."""

    api_key_id: int | None
    end_user: str | None
    country: str | None


@dataclass(frozen=True)
class ContentToPreserve:
    data: bytes
    mime_type: str


class DecisionLog:
    def __init__(self, db: Database, evidence_key: str | None = None) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self._fernet = Fernet(evidence_key.encode()) if evidence_key else None

    @property
    def preserves_evidence(self) -> bool:
        return self._fernet is not None

    def record(self, verdict: Verdict, stage: Stage, request_id: str, requester: Requester,
               content: list[ContentToPreserve] | None = None) -> str:
        """Store the decision; returns its reference."""
        return self.record_restricting(verdict, stage, request_id, requester, content)[0]

    def record_restricting(self, verdict: Verdict, stage: Stage, request_id: str,
                           requester: Requester, content: list[ContentToPreserve] | None = None
                           ) -> tuple[str, AutomatedRestriction | None]:
        """Store the decision and, for a restricted upload, its statement of reasons (in the
        same transaction); returns the reference and the restriction for the uploader."""
        reference = new_reference("dec")
        for_a_person = verdict.action in NEEDS_A_PERSON
        with self.db.session() as session:
            session.add(DecisionRecord(
                reference=reference, request_id=request_id, stage=stage.value,
                action=verdict.action.value, labels=list(verdict.labels),
                reasons=[{"rule_id": r.rule_id, "action": r.action.value, "text": r.text}
                         for r in verdict.reasons],
                dsa=asdict(verdict.dsa) if verdict.dsa else None,
                policy_version=verdict.policy_version, country=requester.country,
                api_key_id=requester.api_key_id, end_user=requester.end_user,
                hashes=verdict.signals.get("hashes") if for_a_person else None,
                signals=verdict.signals if for_a_person else None,
            ))
            if for_a_person:
                open_case(session, Source.DECISION, reference,
                          Routing(labels=tuple(verdict.labels)))
            if for_a_person and self._fernet and content:
                for item in content:
                    session.add(Evidence(decision_reference=reference, mime_type=item.mime_type,
                                         ciphertext=self._fernet.encrypt(item.data)))
            restriction = restrict_automatically(session, reference, verdict,
                                                 requester.end_user)
        return reference, restriction

    def get(self, reference: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            row = session.scalar(select(DecisionRecord).where(
                DecisionRecord.reference == reference))
            if row is None:
                return None
            evidence = session.scalars(select(Evidence.id).where(
                Evidence.decision_reference == reference)).all()
            return {
                "reference": row.reference, "request_id": row.request_id, "stage": row.stage,
                "action": row.action, "labels": row.labels, "reasons": row.reasons,
                "dsa": row.dsa, "policy_version": row.policy_version, "country": row.country,
                "end_user": row.end_user, "hashes": row.hashes, "signals": row.signals,
                "at": iso(row.at),
                "evidence_items": list(evidence),
            }

    def open_evidence(self, evidence_id: int, accessed_by: str,
                      purpose: str) -> ContentToPreserve:
        """Decrypt preserved content. The access goes into the audit log first, so even a
        failed attempt leaves a trace."""
        if not accessed_by.strip() or not purpose.strip():
            raise ValueError("say who opens the evidence and why")
        with self.db.session() as session:
            item = session.get(Evidence, evidence_id)
            if item is None:
                raise KeyError(f"no evidence item {evidence_id}")
            mime_type, ciphertext = item.mime_type, item.ciphertext
            reference = item.decision_reference
        self.audit.append(accessed_by, "evidence.open", f"evidence:{evidence_id}",
                          {"purpose": purpose, "decision": reference})
        if self._fernet is None:
            raise ValueError("WAAKHOND_EVIDENCE_KEY is not set: the evidence cannot be opened")
        try:
            return ContentToPreserve(self._fernet.decrypt(ciphertext), mime_type)
        except InvalidToken:
            raise ValueError("the evidence key does not open this item") from None

    def evidence_accesses(self, evidence_id: int) -> list[dict[str, str]]:
        """Who opened an item, why and when, from the audit log."""
        return [{"by": entry["actor"], "purpose": entry["details"]["purpose"], "at": entry["at"]}
                for entry in self.audit.about(f"evidence:{evidence_id}", "evidence.open")]


@dataclass(frozen=True)
class Generation:
    record_id: str
    mark_id: int
    request_id: str
    kind: str  # "generation" or "edit"
    model: str
    sha256: str
    pdq: str | None
    api_key_id: int | None


class GenerationLog:
    """Images the gateway let through, found again by manifest record id or watermark id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, generation: Generation) -> None:
        with self.db.session() as session:
            session.add(GenerationRecord(**asdict(generation)))

    def find(self, record_id: str | None = None,
             mark_id: int | None = None) -> dict[str, Any] | None:
        if record_id is None and mark_id is None:
            return None
        column, value = ((GenerationRecord.record_id, record_id) if record_id is not None
                         else (GenerationRecord.mark_id, mark_id))
        with self.db.session() as session:
            row = session.scalar(select(GenerationRecord).where(column == value))
            if row is None:
                return None
            # What a victim or platform needs to show the image is synthetic, and nothing
            # about who asked for it.
            return {"record_id": row.record_id, "kind": row.kind, "model": row.model,
                    "created_at": iso(row.at), "sha256": row.sha256}
