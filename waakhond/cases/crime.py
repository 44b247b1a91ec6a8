"""Reports of suspected crimes (DSA Art. 18) built from decided cases.

A report is made only after a person decided the case and restricted the content: automated
verdicts alone never go to the authorities. The package is stored as built, so what is
exported or submitted later is exactly what the reviewer saw; building, exporting and
submitting are each written to the audit log, and the files for a CyberTipline report are
read from the encrypted evidence store, which logs that access too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.audit import AuditLog
from waakhond.cases.decisions import SYNTHETIC_MEDIA, DecisionError
from waakhond.cases.queues import Source
from waakhond.gateway.records import DecisionLog, Stage
from waakhond.reports import (
    CaseFacts,
    Channel,
    CyberTiplineClient,
    ReportError,
    ReportFile,
    ReportSubmissionError,
    UserLocator,
    build_package,
    choose_destination,
    export,
    facts_from_package,
)
from waakhond.store import Database
from waakhond.store.models import (
    Case,
    CrimeReport,
    DecisionRecord,
    Evidence,
    ModerationDecision,
    aware,
    iso,
)

UNKNOWN_USER = "unknown"


@dataclass(frozen=True)
class ReportRequest:
    """What the reviewer adds to the case's facts."""

    why_suspected: str
    timezone: str = "UTC"
    country: str | None = None  # the state concerned, when the case does not say
    ip_address: str | None = None
    account_url: str | None = None
    viewed_by_reviewer: bool = False


@dataclass(frozen=True)
class _Automated:
    """What a gateway decision adds: its labels, country, evidence and whether it was AI output."""

    labels: tuple[str, ...] = ()
    country: str | None = None
    evidence_ids: tuple[int, ...] = ()
    generated: bool = False


def _automated(session: Session, case: Case) -> _Automated:
    if case.source != Source.DECISION:
        return _Automated()
    record = session.scalar(select(DecisionRecord).where(
        DecisionRecord.reference == case.source_reference))
    assert record is not None
    evidence = session.scalars(select(Evidence.id).where(
        Evidence.decision_reference == record.reference).order_by(Evidence.id)).all()
    return _Automated(tuple(record.labels), record.country, tuple(evidence),
                      record.stage == Stage.OUTPUT)


def _restriction(session: Session, case: Case) -> ModerationDecision:
    decision = session.scalar(
        select(ModerationDecision).where(ModerationDecision.case_reference == case.reference,
                                         ModerationDecision.outcome == "restrict",
                                         ModerationDecision.reversed_at.is_(None))
        .order_by(ModerationDecision.id).limit(1))
    if decision is None or decision.category is None:
        raise DecisionError(f"case {case.reference} has no restriction: a person decides the "
                            "case before anything is reported")
    return decision


def _facts(session: Session, case: Case, reviewer: str, request: ReportRequest) -> CaseFacts:
    decision = _restriction(session, case)
    automated = _automated(session, case)
    assert decision.category is not None
    return CaseFacts(
        case_reference=case.reference, category=decision.category,
        keywords=tuple(decision.keywords), labels=automated.labels,
        content_location=decision.content_location,
        occurred_at=aware(decision.content_date or decision.decided_at),
        timezone=request.timezone, why_suspected=request.why_suspected,
        user=UserLocator(decision.end_user or UNKNOWN_USER, request.ip_address,
                         request.account_url),
        country=request.country or automated.country, hashes=dict(decision.hashes or {}),
        evidence_ids=automated.evidence_ids,
        generative_ai=automated.generated or SYNTHETIC_MEDIA in decision.content_type,
        reviewer=reviewer, viewed_by_reviewer=request.viewed_by_reviewer)


def describe(row: CrimeReport) -> dict[str, Any]:
    return {"reference": row.reference, "case": row.case_reference,
            "destination": row.package["destination"], "status": row.status,
            "external_id": row.external_id, "attempts": row.attempts,
            "last_error": row.last_error or None, "created_at": iso(row.created_at),
            "submitted_at": iso(row.submitted_at), "package": row.package}


class CrimeReports:
    def __init__(self, db: Database, evidence: DecisionLog, ncmec_by_default: bool = False,
                 tipline: CyberTiplineClient | None = None) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.evidence = evidence
        self.ncmec_by_default = ncmec_by_default
        self.tipline = tipline

    def build(self, case_reference: str, reviewer: str, request: ReportRequest) -> dict[str, Any]:
        with self.db.session() as session:
            case = session.scalar(select(Case).where(Case.reference == case_reference))
            if case is None:
                raise LookupError(f"no case {case_reference}")
            try:
                facts = _facts(session, case, reviewer, request)
            except ReportError as exc:
                raise DecisionError(str(exc)) from None
            destination = choose_destination(facts, ncmec_by_default=self.ncmec_by_default)
            row = CrimeReport(reference=f"rpt_{secrets.token_hex(10)}",
                              case_reference=case_reference, destination=destination.code,
                              package=build_package(facts, destination))
            session.add(row)
            session.flush()
            described = describe(row)
        self.audit.append(reviewer, "crime_report.build", described["reference"],
                          {"case": case_reference, "destination": destination.code})
        return described

    def get(self, reference: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            row = self._row(session, reference)
            return describe(row) if row else None

    def export(self, reference: str, by: str) -> bytes:
        """The package to send by the authority's own channel; the download is audited."""
        with self.db.session() as session:
            row = self._row(session, reference)
            if row is None:
                raise LookupError(f"no report {reference}")
            package = row.package
        self.audit.append(by, "crime_report.export", reference, {})
        return export(package)

    def submit(self, reference: str, by: str) -> dict[str, Any]:
        """File a CyberTipline report with its files. A failure is recorded on the report
        and raised; the package stays, to be submitted again."""
        with self.db.session() as session:
            row = self._row(session, reference)
            if row is None:
                raise LookupError(f"no report {reference}")
            package = row.package
        if package["destination"]["channel"] != Channel.CYBERTIPLINE.value:
            raise DecisionError(f"this report goes to {package['destination']['name']}: "
                                "export it and send it through that authority's channel")
        if self.tipline is None:
            raise DecisionError("the CyberTipline is not configured (WAAKHOND_CYBERTIPLINE_URL)")
        facts = facts_from_package(package)
        files = [self._file(evidence_id, by, reference) for evidence_id in facts.evidence_ids]
        self.audit.append(by, "crime_report.submit", reference, {"files": len(files)})
        try:
            submitted = self.tipline.submit(facts, files)
        except ReportSubmissionError as exc:
            self._record(reference, failure=f"{exc.step}: {exc}")
            raise DecisionError(f"the report was not filed ({exc.step}: {exc}); it is kept "
                                "and can be submitted again") from None
        return self._record(reference, external_id=submitted.report_id,
                            sent_xml=submitted.report_xml.decode())

    def _file(self, evidence_id: int, by: str, reference: str) -> ReportFile:
        item = self.evidence.open_evidence(evidence_id, by, f"CyberTipline report {reference}")
        extension = item.mime_type.split("/")[-1]
        return ReportFile(f"evidence-{evidence_id}.{extension}", item.data, item.mime_type,
                          evidence_id)

    def _record(self, reference: str, failure: str | None = None,
                external_id: str | None = None, sent_xml: str | None = None) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._row(session, reference)
            assert row is not None
            row.attempts += 1
            if failure is not None:
                row.status, row.last_error = "failed", failure
            else:
                # 18 U.S.C. 2258A(h): the provider preserves what it reported.
                row.status, row.external_id = "submitted", external_id
                row.submitted_at, row.last_error = datetime.now(UTC), ""
                row.package = {**row.package, "submitted_xml": sent_xml}
            return describe(row)

    @staticmethod
    def _row(session: Session, reference: str) -> CrimeReport | None:
        return session.scalar(select(CrimeReport).where(CrimeReport.reference == reference))
