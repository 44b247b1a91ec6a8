"""The DSA transparency report: the template's quantities counted from notices, decisions,
complaints and the gateway's own decisions, within [start, end); an empty period; the CSV,
without personal data; the API route. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.test_cases import verdict
from tests.test_decisions import claimed, removal
from tests.test_notices import notice
from waakhond.api.transparency import router
from waakhond.cases.complaints import ComplaintOutcome, Complaints
from waakhond.cases.decisions import DecisionInput, Decisions, Outcome
from waakhond.cases.notices import NoticeKind, Notices
from waakhond.cases.queues import Cases
from waakhond.core import Action
from waakhond.gateway.access import EndUsers, Scope
from waakhond.gateway.records import DecisionLog, Requester, Stage
from waakhond.store import Database
from waakhond.store.models import Complaint, DecisionRecord, ModerationDecision, Notice
from waakhond.transparency.report import (
    ALL,
    AUTOMATED_MEANS,
    COMPLAINTS,
    HEADER,
    NOTICES,
    ORDERS,
    OWN_INITIATIVE,
    SUSPENSIONS,
    PeriodError,
    ReportRow,
    to_csv,
    transparency_report,
)

USER = "end-user-secret-42"
FLAGGER = "Stichting Flagger"
AUTHORITY = "Politie Eenheid Noord"
PERSONAL = (USER, FLAGGER, AUTHORITY, "a@example.org", "A. Person", "example.org/p/1")
DATA_PROTECTION = "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS"
ILLEGAL, TERMS = "DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"
NO_ACTION = DecisionInput(Outcome.NO_ACTION, facts="Nothing illegal was found.")


def on_terms() -> DecisionInput:
    return removal(ground="terms", legal_ground="", keywords=(),
                   category="STATEMENT_CATEGORY_OTHER_VIOLATION_TC")


@dataclass(frozen=True)
class History:
    now: datetime
    start: datetime
    end: datetime


def move(db: Database, model: Any, reference: str, **times: datetime) -> None:
    """Set when something happened: the code under test stamps everything with now."""
    with db.session() as session:
        session.execute(update(model).where(model.reference == reference).values(**times))


def decide_notice(db: Database, now: datetime, hours: float, decision: DecisionInput,
                  **notice_changes: object) -> tuple[str, str | None, str]:
    """A notice received ``hours`` before ``now`` and decided at ``now``: (decision
    reference, its complaint secret, the notice's status secret)."""
    case, reference, secret = claimed(db, **notice_changes)
    decided = Decisions(db).decide(case, "alice", decision)
    received = now - timedelta(hours=hours)
    move(db, Notice, reference, received_at=received, acknowledged_at=received)
    move(db, ModerationDecision, decided.reference, decided_at=now)
    return decided.reference, decided.complaint_secret, secret


def decide_verdict(db: Database, action: Action, labels: list[str], stage: Stage,
                   decision: DecisionInput) -> tuple[str, str | None]:
    DecisionLog(db).record(verdict(action, labels), stage, "req_1", Requester(None, USER, None))
    case = Cases(db).claim_next("alice")
    assert case is not None and case["source"] == "decision"
    decided = Decisions(db).decide(case["reference"], "alice", decision)
    return decided.reference, decided.complaint_secret


def complain(db: Database, now: datetime, hours: float, decision: str, secret: str,
             outcome: ComplaintOutcome) -> None:
    """A complaint received ``hours`` before ``now``, answered by bob at ``now``."""
    receipt = Complaints(db).receive(decision, secret, "the decision is wrong")
    case = Cases(db).claim_next("bob", "complaints")
    assert case is not None and case["source_reference"] == receipt.reference
    Complaints(db).decide(case["reference"], "bob", outcome, "We looked again.")
    move(db, Complaint, receipt.reference, received_at=now - timedelta(hours=hours),
         decided_at=now)


def history(db: Database) -> History:
    """Notices, an order, automated verdicts, complaints and a suspension in the period, and
    some just outside it."""
    now = datetime.now(UTC)
    start, end = now - timedelta(days=10), now + timedelta(days=1)
    for _ in range(4):  # the next illegal-content decision suspends the account (Art. 23)
        EndUsers(db).strike(USER, Action.BLOCK)
    illegal, illegal_secret, _ = decide_notice(db, now, 2, removal(end_user=USER))
    receipt = Notices(db).receive(notice(category=DATA_PROTECTION), trusted_flagger=FLAGGER)
    case = Cases(db).claim_next("alice")
    assert case is not None and case["source_reference"] == receipt.reference
    Decisions(db).decide(case["reference"], "alice", on_terms())
    move(db, Notice, receipt.reference, received_at=now - timedelta(hours=4))
    declined, _, notifier_secret = decide_notice(db, now, 9, NO_ACTION,
                                                 kind=NoticeKind.TAKE_IT_DOWN)
    decide_notice(db, now, 1, removal(), kind=NoticeKind.AUTHORITY_ORDER, authority=AUTHORITY)
    decide_notice(db, start - timedelta(seconds=1), 1, removal())  # just before the period
    confirmed, confirmed_secret = decide_verdict(
        db, Action.REVIEW, ["NUDITY_UNCERTAIN"], Stage.OUTPUT, on_terms())
    decide_verdict(db, Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR"], Stage.IMAGE, NO_ACTION)
    log, nobody = DecisionLog(db), Requester(None, USER, None)
    log.record(verdict(Action.BLOCK, ["ADULT_NUDITY"]), Stage.PROMPT, "req_2", nobody)
    move(db, DecisionRecord, log.record(verdict(Action.ALLOW, []), Stage.PROMPT, "req_3",
                                        nobody), at=start)  # the first moment counts
    move(db, DecisionRecord, log.record(verdict(Action.BLOCK, ["TOO_EARLY"]), Stage.PROMPT,
                                        "req_4", nobody), at=start - timedelta(seconds=1))
    assert illegal_secret and confirmed_secret
    complain(db, now, 1, illegal, illegal_secret, ComplaintOutcome.UPHELD)
    complain(db, now, 5, declined, notifier_secret, ComplaintOutcome.UPHELD)
    complain(db, now, 30, confirmed, confirmed_secret, ComplaintOutcome.REVERSED)
    late = Notices(db).receive(notice())  # the moment the period ends is outside it
    move(db, Notice, late.reference, received_at=end, acknowledged_at=end)
    return History(now, start, end)


def table(rows: list[ReportRow]) -> dict[tuple[str, str, str], Any]:
    found = {(row.section, row.quantity, row.breakdown): row.value for row in rows}
    assert len(found) == len(rows), "each quantity and breakdown appears once"
    return found


def breakdowns(found: dict[tuple[str, str, str], Any], section: str,
               quantity: str) -> dict[str, Any]:
    return {breakdown: value for (s, q, breakdown), value in found.items()
            if (s, q) == (section, quantity)}


@pytest.fixture
def report(db_url: str) -> dict[tuple[str, str, str], Any]:
    db = Database(db_url)
    period = history(db)
    return table(transparency_report(db, period.start, period.end))


def test_notices_are_counted_by_category_kind_flagger_ground_and_time(report):
    assert breakdowns(report, NOTICES, "notices received, by type of alleged illegal "
                                       "content") == {
        ALL: 3, "STATEMENT_CATEGORY_CYBER_VIOLENCE": 2, DATA_PROTECTION: 1}
    assert breakdowns(report, NOTICES, "notices received, by kind") == {
        "art16": 2, "take_it_down": 1}
    assert report[NOTICES, "notices submitted by trusted flaggers", ALL] == 1
    assert breakdowns(report, NOTICES, "notices decided, by outcome") == {
        ALL: 3, "restrict": 2, "no_action": 1}
    # The suspension that followed the illegal-content decision is not a second action.
    assert breakdowns(report, NOTICES, "actions taken, by ground") == {
        ALL: 2, ILLEGAL: 1, TERMS: 1}
    assert breakdowns(report, NOTICES, "actions taken, by category") == {
        ALL: 2, "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN": 1,
        "STATEMENT_CATEGORY_OTHER_VIOLATION_TC": 1}
    assert breakdowns(report, NOTICES, "actions taken, by type of measure") == {
        "DECISION_VISIBILITY_CONTENT_REMOVED": 2}
    assert report[NOTICES, "notices processed by automated means", ALL] == 0
    assert report[NOTICES, "median hours from receipt to decision", ALL] == 4.0  # 2, 4, 9


def test_authority_orders_are_reported_on_their_own(report):
    assert breakdowns(report, ORDERS, "orders received, by type of illegal content") == {
        ALL: 1, "STATEMENT_CATEGORY_CYBER_VIOLENCE": 1}
    assert report[ORDERS, "median hours to inform the authority of receipt", ALL] == 0.0
    assert report[ORDERS, "median hours to give effect to the order", ALL] == 1.0


def test_own_initiative_moderation_and_the_accuracy_of_automated_means(report):
    assert breakdowns(report, OWN_INITIATIVE, "automated decisions, by stage") == {
        ALL: 4, "image": 1, "output": 1, "prompt": 2}
    assert breakdowns(report, OWN_INITIATIVE, "automated decisions, by action") == {
        "allow": 1, "block": 1, "block_and_report": 1, "review": 1}
    assert breakdowns(report, OWN_INITIATIVE, "automated restrictions, by label") == {
        "ADULT_NUDITY": 1, "NUDITY_UNCERTAIN": 1, "SEXUAL_MINOR": 1}
    assert breakdowns(report, OWN_INITIATIVE,
                      "automated detections decided by a person, by outcome") == {
        ALL: 2, "restrict": 1, "no_action": 1}
    assert breakdowns(report, OWN_INITIATIVE, "actions taken, by ground") == {ALL: 1, TERMS: 1}
    accuracy = {(quantity, breakdown): value
                for (section, quantity, breakdown), value in report.items()
                if section == AUTOMATED_MEANS}
    assert accuracy["automated verdicts reviewed by a person", ALL] == 2
    assert accuracy["share confirmed (precision indicator)", ALL] == 0.5
    assert accuracy["share overturned (error rate)", ALL] == 0.5
    assert accuracy["share confirmed (precision indicator)", "review"] == 1.0
    assert accuracy["overturned by the reviewer (no action)", "block_and_report"] == 1
    assert accuracy["share overturned (error rate)", "block_and_report"] == 1.0
    assert accuracy["decisions on automated detections reversed on complaint", ALL] == 1
    assert breakdowns(report, AUTOMATED_MEANS, "decisions, by use of automated means") == {
        ALL: 7, "AUTOMATED_DECISION_NOT_AUTOMATED": 6, "AUTOMATED_DECISION_PARTIALLY": 1}


def test_complaints_reversals_and_suspensions(report):
    assert breakdowns(report, COMPLAINTS, "complaints received, by complainant") == {
        ALL: 3, "affected_user": 2, "notifier": 1}
    assert breakdowns(report, COMPLAINTS, "complaints received, by ground of the decision") == {
        ALL: 3, ILLEGAL: 1, TERMS: 1, "no_action": 1}
    assert breakdowns(report, COMPLAINTS, "complaints decided, by outcome") == {
        ALL: 3, "upheld": 2, "reversed": 1}
    assert report[COMPLAINTS, "median hours to decide a complaint", ALL] == 5.0  # 1, 5, 30
    assert report[COMPLAINTS, "decisions reversed on complaint", ALL] == 1
    assert report[SUSPENSIONS, "suspensions for manifestly illegal content", ALL] == 1
    assert report[SUSPENSIONS, "suspensions lifted on complaint", ALL] == 0


def test_an_empty_period_gives_zeros_and_a_reversed_one_an_error(db_url):
    db = Database(db_url)
    period = history(db)
    later = period.end + timedelta(days=365)
    rows = transparency_report(db, later, later + timedelta(days=365))
    assert rows and {row.breakdown for row in rows} == {ALL}
    assert {row.value for row in rows} == {0, ""}  # counts are 0; a median of nothing is ""
    with pytest.raises(PeriodError):
        transparency_report(db, later, later)


def test_the_csv_parses_back_and_holds_no_personal_data(db_url):
    db = Database(db_url)
    period = history(db)
    rows = transparency_report(db, period.start, period.end)
    text = to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert tuple(parsed[0]) == HEADER and len(parsed) == len(rows)
    assert {"section": NOTICES, "quantity": "notices submitted by trusted flaggers",
            "breakdown": ALL, "value": "1"} in parsed
    for personal in PERSONAL:
        assert personal not in text


def test_the_report_over_the_api(client):
    url = "/v1/transparency/report"
    if not any(getattr(route, "path", None) == url for route in client.app.routes):
        client.app.include_router(router)  # until the app registers it
    notified = client.post("/v1/notices", json={
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE", "location": "https://example.org/p/1",
        "explanation": "a fake nude of me", "good_faith": True, "notifier_name": "A. Person",
        "notifier_email": "a@example.org"})
    assert notified.status_code == 201, notified.text
    auditor = client.gateway.keys.create("auditor", [Scope.AUDIT.value]).token
    moderator = client.gateway.keys.create("mod", [Scope.MODERATE.value]).token
    today = datetime.now(UTC).date()
    period = {"start": str(today), "end": str(today + timedelta(days=1))}
    answer = client.get(url, params=period, headers={"Authorization": f"Bearer {auditor}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(answer.text)))
    assert {"section": NOTICES, "quantity": "notices received, by kind", "breakdown": "art16",
            "value": "1"} in parsed
    assert "a@example.org" not in answer.text
    assert client.get(url, params=period).status_code == 401
    assert client.get(url, params=period,
                      headers={"Authorization": f"Bearer {moderator}"}).status_code == 403
    as_auditor = {"Authorization": f"Bearer {auditor}"}
    backwards = client.get(url, params={"start": period["end"], "end": period["start"]},
                           headers=as_auditor)
    assert backwards.status_code == 400
    assert backwards.json()["error"]["code"] == "invalid_period"
    garbled = client.get(url, params={**period, "start": "2025-13-01"}, headers=as_auditor)
    assert garbled.status_code == 400
