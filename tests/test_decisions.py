"""Deciding cases: DSA restrictions with their statements of reasons, webhook events and the
notifier's answer, all in one change; repeat misuse (Art. 23); complaints (Art. 20) answered
by another person, with reversal restoring the content. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.test_notices import notice
from waakhond.audit import AuditLog
from waakhond.cases import decisions as decisions_module
from waakhond.cases.complaints import ComplaintOutcome, Complaints
from waakhond.cases.decisions import (
    DecisionError,
    DecisionInput,
    Decisions,
    Outcome,
    Restriction,
)
from waakhond.cases.notices import (
    CHILD_SAFETY,
    MISUSE_SUSPEND_AT,
    MISUSE_SUSPENSION,
    NoticeKind,
    Notices,
    NotifierSuspended,
)
from waakhond.cases.queues import Cases
from waakhond.core import Action, Context, DsaClassification, Reason, Verdict
from waakhond.gateway.access import EndUsers, Scope
from waakhond.gateway.records import DecisionLog, Requester, Stage
from waakhond.hashing.banks import OWN_REMOVALS_BANK, BankKind, BankService, EntryInput
from waakhond.store import Database
from waakhond.store.models import ModerationDecision, StatementOfReasons, WebhookDelivery
from waakhond.transparency.report import transparency_report

REMOVED = Restriction(visibility=("DECISION_VISIBILITY_CONTENT_REMOVED",))
MD5 = "0" * 31 + "1"


def removal(**changes: object) -> DecisionInput:
    fields = {"outcome": Outcome.RESTRICT, "ground": "illegal",
              "legal_ground": "Art. 139h Wetboek van Strafrecht (NL)",
              "facts": "An AI-edited image shows a real adult undressed without consent.",
              "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
              "keywords": ("KEYWORD_NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN",),
              "restriction": REMOVED, "territorial_scope": ("NL",), "synthetic": True,
              "hashes": {"md5": MD5}, **changes}
    return DecisionInput(**fields)  # type: ignore[arg-type]


def claimed(db: Database, reviewer: str = "alice", **notice_changes: object) -> tuple[str, str,
                                                                                      str]:
    """A notice, claimed by ``reviewer``: (case, notice reference, notice secret)."""
    receipt = Notices(db).receive(notice(**notice_changes))
    case = Cases(db).claim_next(reviewer)
    assert case is not None and case["source_reference"] == receipt.reference
    return case["reference"], receipt.reference, receipt.status_secret


def events(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        session.expunge_all()
        return list(rows)


def statements(db: Database) -> list[StatementOfReasons]:
    with db.session() as session:
        rows = session.scalars(select(StatementOfReasons).order_by(StatementOfReasons.id)).all()
        session.expunge_all()
        return list(rows)


def test_a_removal_tells_everyone_and_blocks_identical_copies(db_url):
    db = Database(db_url)
    case, reference, secret = claimed(db, kind=NoticeKind.TAKE_IT_DOWN)
    decided = Decisions(db).decide(case, "alice", removal(end_user="user-7"))
    kinds = [event.event_type for event in events(db)]
    assert kinds == ["content.restricted", "notice.decided"]
    restricted = events(db)[0].payload
    assert restricted["hashes"] == {"md5": MD5} and restricted["user"] == "user-7"
    assert restricted["complaint_secret"] == decided.complaint_secret
    assert "Art. 21" in restricted["redress"]
    assert "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN" in restricted["keywords"]
    [statement] = statements(db)
    assert statement.puid == decided.statements[0]
    text = str(statement.payload)
    assert "user-7" not in text and "example.org" not in text  # no personal data
    assert "CONTENT_TYPE_SYNTHETIC_MEDIA" in statement.payload["content_type"]
    status = Notices(db).status(reference, secret)
    assert status["status"] == "decided"
    assert status["decision"]["outcome"] == "restrict"
    assert status["decision"]["automated_decision"] is False
    entry = BankService(db).entry(OWN_REMOVALS_BANK, "md5", MD5)
    assert entry.status == "active"
    assert AuditLog(db).about(case, "case.decide")


def test_only_the_holder_decides_and_only_once(db_url):
    db = Database(db_url)
    case, _, _ = claimed(db)
    with pytest.raises(DecisionError, match="claim it first"):
        Decisions(db).decide(case, "bob", removal())
    Decisions(db).decide(case, "alice", removal())
    with pytest.raises(DecisionError):
        Decisions(db).decide(case, "alice", removal())


@pytest.mark.parametrize(("changes", "message"), [
    ({"restriction": Restriction()}, "at least one"),
    ({"ground": None}, "ground"),
    ({"legal_ground": " "}, "legal ground"),
    ({"keywords": ("KEYWORD_DANGEROUS_TOYS",)}, "unknown DSA keywords"),
    ({"facts": "Reported by a.person@example.org"}, "statement of reasons would be invalid"),
])
def test_an_incomplete_restriction_is_refused_before_anything_changes(db_url, changes,
                                                                      message):
    db = Database(db_url)
    case, _, _ = claimed(db)
    with pytest.raises(DecisionError, match=message):
        Decisions(db).decide(case, "alice", removal(**changes))
    assert Cases(db).get(case)["status"] == "assigned" and not events(db)


def test_a_failure_midway_leaves_nothing_behind(db_url, monkeypatch):
    db = Database(db_url)
    case, reference, secret = claimed(db)

    def broken(*_: object, **__: object) -> dict:
        raise RuntimeError("statement builder down")

    monkeypatch.setattr(decisions_module, "statement_for", broken)
    with pytest.raises(RuntimeError):
        Decisions(db).decide(case, "alice", removal(end_user="user-1"))
    assert Cases(db).get(case)["status"] == "assigned"
    assert not events(db) and not statements(db)
    assert Notices(db).status(reference, secret)["status"] == "received"
    assert EndUsers(db).describe("user-1")["strikes"] == 0


def test_repeated_illegal_content_warns_then_suspends_the_account(db_url):
    """Art. 23: a warning comes first; the suspension is a restriction with its own
    statement of reasons and complaint secret."""
    db = Database(db_url)
    results = []
    for _ in range(5):
        case, _, _ = claimed(db)
        results.append(Decisions(db).decide(case, "alice", removal(end_user="user-9")))
    kinds = [event.event_type for event in events(db)]
    assert kinds.index("account.warned") < kinds.index("account.suspended")
    assert kinds.count("account.suspended") == 1
    assert results[-1].suspension_complaint_secret is not None
    assert len(statements(db)) == 6
    assert statements(db)[-1].payload["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
    assert EndUsers(db).describe("user-9")["suspended"] is True


def test_terms_violations_do_not_count_towards_suspension(db_url):
    db = Database(db_url)
    for _ in range(5):
        case, _, _ = claimed(db)
        Decisions(db).decide(case, "alice", removal(
            ground="terms", legal_ground="", end_user="user-3",
            category="STATEMENT_CATEGORY_OTHER_VIOLATION_TC", keywords=()))
    assert EndUsers(db).describe("user-3")["strikes"] == 0


def test_a_complaint_reversed_by_another_person_restores_the_content(db_url):
    db = Database(db_url)
    case, _, _ = claimed(db)
    decided = Decisions(db).decide(case, "alice", removal(end_user="user-5"))
    complaints = Complaints(db)
    with pytest.raises(LookupError):
        complaints.receive(decided.reference, "wrong secret", "it is me, I consented")
    receipt = complaints.receive(decided.reference, decided.complaint_secret,
                                 "it is me, and I consented")
    assert receipt.complainant == "affected_user"
    complaint_case = Cases(db).claim_next("alice", "complaints")
    assert complaint_case["source_reference"] == receipt.reference
    with pytest.raises(DecisionError, match="someone other"):
        complaints.decide(complaint_case["reference"], "alice", ComplaintOutcome.REVERSED,
                          "consent shown")
    Cases(db).release(complaint_case["reference"], "alice")
    Cases(db).claim_next("bob", "complaints")
    answer = complaints.decide(complaint_case["reference"], "bob", ComplaintOutcome.REVERSED,
                               "You showed your consent; the image is back.")
    assert answer["outcome"] == "reversed" and "Art. 21" in answer["answer"]
    assert [e.event_type for e in events(db)][-2:] == ["content.restored", "complaint.decided"]
    assert BankService(db).entry(OWN_REMOVALS_BANK, "md5", MD5).status == "withdrawn"
    assert Decisions(db).get(decided.reference)["reversed_at"] is not None
    assert complaints.status(receipt.reference, receipt.status_secret)["status"] == "decided"
    with pytest.raises(DecisionError, match="already been reversed"):
        complaints.receive(decided.reference, decided.complaint_secret, "again")


def test_a_notifier_can_complain_about_no_action_and_the_notice_is_decided_again(db_url):
    db = Database(db_url)
    case, reference, secret = claimed(db, category=CHILD_SAFETY)
    declined = Decisions(db).decide(case, "alice", DecisionInput(
        Outcome.NO_ACTION, facts="Nothing illegal was found at this location."))
    assert declined.complaint_secret is None and not statements(db)
    receipt = Complaints(db).receive(declined.reference, secret, "it is still there")
    assert receipt.complainant == "notifier"
    complaint_case = Cases(db).claim_next("bob", "complaints")
    Complaints(db).decide(complaint_case["reference"], "bob", ComplaintOutcome.REVERSED,
                          "We looked again.")
    again = Cases(db).claim_next("carol")
    assert again["source_reference"] == reference and again["queue"] == "child_safety"


def test_complaints_close_after_six_months(db_url):
    db = Database(db_url)
    case, _, _ = claimed(db)
    decided = Decisions(db).decide(case, "alice", removal())
    late = datetime.now(UTC) + timedelta(days=184)
    with pytest.raises(DecisionError, match="six months"):
        Complaints(db).receive(decided.reference, decided.complaint_secret, "late", now=late)
    Complaints(db).receive(decided.reference, decided.complaint_secret, "in time",
                           now=late - timedelta(days=2))


def test_deciding_and_complaining_over_the_api(client):
    db = client.gateway.decisions.db
    receipt = client.post("/v1/notices", json={
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE", "location": "https://example.org/p/2",
        "explanation": "a fake nude of me", "good_faith": True, "notifier_name": "A. Person",
        "notifier_email": "a@example.org"}).json()
    alice = client.gateway.keys.create("alice", [Scope.MODERATE.value]).token
    bob = client.gateway.keys.create("bob", [Scope.MODERATE.value]).token
    as_alice = {"Authorization": f"Bearer {alice}"}
    case = client.post("/v1/cases/claim", headers=as_alice).json()
    bad = client.post(f"/v1/cases/{case['reference']}/decision", headers=as_alice,
                      json={"outcome": "restrict", "ground": "illegal", "facts": "x"})
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "invalid_decision"
    unknown = client.post(f"/v1/cases/{case['reference']}/decision", headers=as_alice,
                          json={"outcome": "restrict", "visibility": ["DECISION_VISIBILITY_X"]})
    assert unknown.status_code == 400  # the schema refuses unknown keys
    decided = client.post(f"/v1/cases/{case['reference']}/decision", headers=as_alice, json={
        "outcome": "restrict", "ground": "illegal", "legal_ground": "Art. 139h Sr (NL)",
        "facts": "An AI-made intimate image of a real person without consent.",
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
        "keywords": ["KEYWORD_NON_CONSENSUAL_IMAGE_SHARING"],
        "visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"], "synthetic": True})
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["outcome"] == "restrict" and len(body["statements"]) == 1
    assert "complaint_secret" not in body  # it goes to the user, not to the moderator
    shown = client.get(f"/v1/cases/{case['reference']}", headers=as_alice).json()
    assert shown["status"] == "decided" and shown["decisions"][0]["reference"] == body[
        "reference"]
    status = client.get(f"/v1/notices/{receipt['reference']}",
                        headers={"X-Notice-Secret": receipt["status_secret"]}).json()
    assert status["decision"]["reference"] == body["reference"]
    complaint = client.post("/v1/complaints", json={
        "decision": body["reference"], "secret": receipt["status_secret"],
        "explanation": "the restriction is too narrow"})
    assert complaint.status_code == 201 and complaint.json()["as"] == "notifier"
    wrong = client.post("/v1/complaints", json={"decision": body["reference"],
                                                "secret": "nope", "explanation": "x"})
    assert wrong.status_code == 404
    as_bob = {"Authorization": f"Bearer {bob}"}
    complaint_case = client.post("/v1/cases/claim?queue=complaints", headers=as_bob).json()
    answered = client.post(f"/v1/cases/{complaint_case['reference']}/answer", headers=as_bob,
                           json={"outcome": "upheld", "answer": "The removal stands."})
    assert answered.status_code == 200 and answered.json()["outcome"] == "upheld"
    followed = client.get(f"/v1/complaints/{complaint.json()['reference']}",
                          headers={"X-Complaint-Secret": complaint.json()["status_secret"]})
    assert followed.json()["decided_by_a_person"] is True
    assert len(statements(db)) == 1


def reported_upload(db: Database, context: Context = Context.UPLOAD,
                    hashes: dict[str, object] | None = None) -> tuple[str, object]:
    """Signal level: an upload the policy reported, as DecisionLog records it."""
    reason = Reason("bank.csam_known", Action.BLOCK_AND_REPORT, "matches a known hash", {},
                    legal_source="Directive 2011/93/EU art. 5")
    dsa = DsaClassification("STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
                            ("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",),
                            "DECISION_GROUND_ILLEGAL_CONTENT")
    verdict = Verdict(Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR"], [reason], dsa, "t", ["base"],
                      context, "NL",
                      signals={"hashes": hashes or {"md5": MD5, "pdq_quality": 0}})
    return DecisionLog(db).record_restricting(verdict, Stage.IMAGE, "req_1",
                                              Requester(None, "uploader-2", "NL"))


def test_a_restricted_upload_is_a_fully_automated_decision_with_a_statement(db_url):
    db = Database(db_url)
    _, restriction = reported_upload(db)
    [statement] = statements(db)
    assert statement.payload["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert statement.payload["automated_detection"] == "Yes"
    assert statement.payload["territorial_scope"] == ["NL"]
    assert "Directive 2011/93/EU" in statement.payload["illegal_content_legal_ground"]
    receipt = Complaints(db).receive(restriction.decision, restriction.complaint_secret,
                                     "this is a holiday photo")
    assert receipt.complainant == "affected_user"


def test_refusing_to_generate_is_not_a_restriction_of_hosted_content(db_url):
    db = Database(db_url)
    _, restriction = reported_upload(db, Context.GENERATED)
    assert restriction is None and not statements(db)


def test_a_person_confirming_an_automated_restriction_issues_no_second_statement(db_url):
    db = Database(db_url)
    reported_upload(db)
    case = Cases(db).claim_next("alice")
    decided = Decisions(db).decide(case["reference"], "alice", removal(
        category="STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        keywords=("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",)))
    assert decided.statements == () and decided.events == ()
    assert len(statements(db)) == 1


def test_a_person_overturning_an_automated_restriction_restores_the_content(db_url):
    db = Database(db_url)
    _, restriction = reported_upload(db)
    BankService(db).ensure(OWN_REMOVALS_BANK, BankKind.OWN_REMOVALS, "test")
    BankService(db).add(OWN_REMOVALS_BANK, [EntryInput("md5", MD5)])  # as screening does
    case = Cases(db).claim_next("alice")
    Decisions(db).decide(case["reference"], "alice", DecisionInput(
        Outcome.NO_ACTION, facts="A false match: the image is harmless."))
    [restored] = events(db)
    assert restored.event_type == "content.restored"
    assert restored.payload["decision"] == restriction.decision
    assert BankService(db).entry(OWN_REMOVALS_BANK, "md5", MD5).status == "withdrawn"
    assert Decisions(db).get(restriction.decision)["reversed_at"] is not None


def test_overturning_withdraws_every_hash_the_removal_banked(db_url):
    """The screen banks the PDQ of the picture inside a border too (a framed copy); a person
    restoring the content takes that one out of the bank as well."""
    pdq, inside = "a" * 64, "b" * 64
    db = Database(db_url)
    reported_upload(db, hashes={"md5": MD5, "pdq": pdq, "pdq_quality": 90,
                                "pdq_inside_border": [inside] + ["c" * 64] * 7})
    banks = BankService(db)
    banks.ensure(OWN_REMOVALS_BANK, BankKind.OWN_REMOVALS, "test")
    banks.add(OWN_REMOVALS_BANK, [EntryInput("md5", MD5), EntryInput("pdq", pdq),
                                  EntryInput("pdq", inside)])  # as screening does
    case = Cases(db).claim_next("alice")
    Decisions(db).decide(case["reference"], "alice", DecisionInput(
        Outcome.NO_ACTION, facts="A false match: the image is harmless."))
    assert [banks.entry(OWN_REMOVALS_BANK, kind, value).status
            for kind, value in (("md5", MD5), ("pdq", pdq), ("pdq", inside))] == ["withdrawn"] * 3


def test_a_notifier_of_manifestly_unfounded_notices_is_warned_then_suspended(db_url):
    """Art. 23(2): a warning first, then notices are not processed for a while."""
    db = Database(db_url)
    unfounded = DecisionInput(Outcome.NO_ACTION, facts="The notice names no illegal content.",
                              manifestly_unfounded=True)
    for _ in range(MISUSE_SUSPEND_AT):
        case, _, _ = claimed(db, notifier_email="Spam@Example.org")
        Decisions(db).decide(case, "alice", unfounded)
    with pytest.raises(NotifierSuspended, match=r"Art\. 23"):
        Notices(db).receive(notice(notifier_email="spam@example.org"))
    now = datetime.now(UTC)
    reported = {row.quantity: row.value for row in transparency_report(
        db, now - timedelta(days=1), now + timedelta(days=1))}
    assert reported["notices declined as manifestly unfounded"] == MISUSE_SUSPEND_AT
    assert Notices(db).receive(notice(notifier_email="other@example.org")).warning is None
    assert Notices(db).receive(notice(category=CHILD_SAFETY, notifier_name=None,
                                      notifier_email=None)).warning is None
    with db.session() as session:  # the suspension runs out
        session.execute(update(ModerationDecision).values(
            decided_at=datetime.now(UTC) - MISUSE_SUSPENSION - timedelta(days=1)))
    assert "manifestly unfounded" in Notices(db).receive(
        notice(notifier_email="spam@example.org")).warning


def test_only_a_declined_notice_can_be_manifestly_unfounded(db_url):
    db = Database(db_url)
    case, _, _ = claimed(db)
    with pytest.raises(DecisionError, match="no_action"):
        Decisions(db).decide(case, "alice", removal(manifestly_unfounded=True))
    reported_upload(db)
    automated = Cases(db).claim_next("bob", "child_safety")
    with pytest.raises(DecisionError, match="only a notice"):
        Decisions(db).decide(automated["reference"], "bob", DecisionInput(
            Outcome.NO_ACTION, facts="x", manifestly_unfounded=True))
