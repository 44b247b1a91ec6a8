"""Statements of reasons for the Commission's Transparency Database: built from decisions, valid
for a fake of its API that validates like the real one, free of personal data, and sent by the
submitter in batches that survive failures, lost answers and concurrent senders (on SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.fake_transparency_db import FakeTransparencyDatabase, validate_statement
from tests.gateway_server import free_port
from waakhond.policy.dsa import TERRITORIES
from waakhond.store import Database
from waakhond.store.models import ModerationDecision, StatementOfReasons, aware
from waakhond.transparency.statements import new_puid, statement_for
from waakhond.transparency.submitter import StatementSubmitter, SubmitResult

ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
VOLUNTARY = "SOURCE_VOLUNTARY"
NOT_AUTOMATED = "AUTOMATED_DECISION_NOT_AUTOMATED"
# Personal data a decision holds and no statement may carry.
END_USER = "jane.doe-4711"
LOCATION = "https://platform.example/u/jane.doe/posts/77"
REVIEWER = "reviewer-ann.smith"
HASH = "ab" * 32
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the submitter's clock in these tests


def decision(**changes: Any) -> ModerationDecision:
    """An AI-made sexual image of an apparent minor, removed; ``changes`` make other shapes."""
    fields: dict[str, Any] = {
        "reference": "act_1", "case_reference": "cas_1", "outcome": "restrict",
        "ground": ILLEGAL, "legal_ground": "Directive 2011/93/EU, Art. 5(6); national criminal law",
        "facts": "The image is an AI-generated depiction of the sexual abuse of a child.",
        "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "keywords": ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE"],
        "visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"], "account": None,
        "monetary": None, "provision": None, "territorial_scope": [],
        "content_type": ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_SYNTHETIC_MEDIA"],
        "content_location": LOCATION, "content_date": datetime(2026, 5, 3, 23, 30, tzinfo=UTC),
        "end_user": END_USER, "hashes": {"pdq": HASH}, "automated_detection": True,
        "decided_by": REVIEWER, "decided_at": datetime(2026, 5, 4, 9, 15, tzinfo=UTC),
    }
    return ModerationDecision(**{**fields, **changes})


CSAM_DEEPFAKE: dict[str, Any] = {}
NCII_TERMS = {
    "ground": INCOMPATIBLE, "legal_ground": "",
    "facts": "A sexualised AI edit of a real woman's photograph, made without her consent.",
    "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
    "keywords": ["KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN"],
    "visibility": ["DECISION_VISIBILITY_CONTENT_DISABLED"], "territorial_scope": ["NL", "BE"],
    "automated_detection": False,
}
ACCOUNT_ONLY = {
    "ground": INCOMPATIBLE, "legal_ground": "",
    "facts": "The account repeatedly asked for sexual images of real people without consent.",
    "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "keywords": [], "visibility": [],
    "account": "DECISION_ACCOUNT_SUSPENDED", "content_type": ["CONTENT_TYPE_TEXT"],
}


def statement(**changes: Any) -> dict[str, Any]:
    return statement_for(decision(**changes), VOLUNTARY, NOT_AUTOMATED, new_puid())


# --- statements ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "expected"), [
    (CSAM_DEEPFAKE, {"decision_ground": ILLEGAL, "automated_detection": "Yes",
                     "illegal_content_explanation": decision().facts,
                     "territorial_scope": sorted(TERRITORIES), "content_date": "2026-05-03",
                     "application_date": "2026-05-04"}),
    (NCII_TERMS, {"decision_ground": INCOMPATIBLE, "incompatible_content_illegal": "No",
                  "incompatible_content_ground":
                      "The provider's terms and conditions: cyber violence against women",
                  "territorial_scope": ["BE", "NL"], "automated_detection": "No"}),
    (ACCOUNT_ONLY, {"decision_account": "DECISION_ACCOUNT_SUSPENDED"}),
], ids=["illegal-csam-deepfake-removed", "incompatible-ncii-disabled", "account-suspended-only"])
def test_statements_from_decisions_pass_the_databases_validation(shape, expected):
    built = statement(**shape)
    assert validate_statement(built) == {}
    assert expected.items() <= built.items()
    assert built["puid"].startswith("wk-")
    ground_fields = {key for key in built if key.startswith(("illegal_", "incompatible_"))}
    assert all(key.startswith("illegal_" if built["decision_ground"] == ILLEGAL
                              else "incompatible_") for key in ground_fields)
    if shape is ACCOUNT_ONLY:
        assert "decision_visibility" not in built and "category_specification" not in built


def test_dates_are_utc_days_and_the_language_is_passed_on():
    late_evening_utc = datetime(2026, 5, 4, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    built = statement_for(decision(content_date=late_evening_utc), VOLUNTARY, NOT_AUTOMATED,
                          new_puid(), content_language="NL")
    assert built["content_date"] == "2026-05-03"
    assert built["content_language"] == "NL"


def test_no_personal_data_reaches_the_statement():
    for shape in (CSAM_DEEPFAKE, NCII_TERMS, ACCOUNT_ONLY):
        sent = json.dumps(statement(**shape))
        for personal in (END_USER, "jane", LOCATION, REVIEWER, HASH):
            assert personal not in sent
        assert "source_identity" not in sent


@pytest.mark.parametrize(("changes", "source_type", "problem"), [
    ({"visibility": []}, VOLUNTARY, "at least one restriction"),
    ({"keywords": ["KEYWORD_DANGEROUS_TOYS"]}, VOLUNTARY, "category_specification"),
    ({"territorial_scope": ["EL"]}, VOLUNTARY, "territorial_scope"),
    ({"visibility": ["DECISION_VISIBILITY_OTHER"]}, VOLUNTARY, "need a description"),
    ({"legal_ground": ""}, VOLUNTARY, "illegal_content_legal_ground is required"),
    ({"content_date": None}, VOLUNTARY, "content_date is required"),
    ({"facts": "x" * 2001}, VOLUNTARY, "illegal_content_explanation is longer than 2000"),
    ({"facts": "Reported by jane.doe@example.org."}, VOLUNTARY, "e-mail address"),
    ({}, "SOURCE_NOTICE", "source_type 'SOURCE_NOTICE'"),
])
def test_statements_that_cannot_be_valid_are_refused(changes, source_type, problem):
    with pytest.raises(ValueError, match=problem):
        statement_for(decision(**changes), source_type, NOT_AUTOMATED, new_puid())


def test_puids_are_random_and_in_the_databases_alphabet():
    puids = {new_puid() for _ in range(1000)}
    assert len(puids) == 1000
    assert validate_statement({**statement(), "puid": puids.pop()}) == {}


# --- the fake database validates like the real one -----------------------------------------------


@pytest.mark.parametrize(("changes", "key", "message"), [
    ({"category_specification": ["KEYWORD_DANGEROUS_TOYS"]}, "category_specification",
     "The selected category specification is invalid."),
    ({"content_date": "03-05-2026"}, "content_date",
     "The content date does not match the format YYYY-MM-DD."),
    ({"application_date": "2019-12-31"}, "application_date",
     "The application date field must be a date after or equal to 2020-01-01."),
    ({"puid": "wk 1/2"}, "puid", "The puid format is invalid."),
    ({"illegal_content_explanation": " "}, "illegal_content_explanation",
     "The illegal content explanation field is required when decision ground is illegal "
     "content."),
    ({"decision_ground": INCOMPATIBLE}, "incompatible_content_ground",
     "The incompatible content ground field is required when decision ground is incompatible "
     "content."),
    ({"automated_detection": True}, "automated_detection",
     "The selected automated detection is invalid."),
    ({"territorial_scope": ["EL"]}, "territorial_scope",
     "The selected territorial scope is invalid."),
    ({"decision_visibility": []}, "decision_account",
     "The decision account field is required when none of decision visibility / decision "
     "monetary / decision provision are present."),
    ({"content_type": "CONTENT_TYPE_IMAGE"}, "content_type",
     "The content type field must be an array."),
    ({"decision_facts": "x" * 5001}, "decision_facts",
     "The decision facts field must not be greater than 5000 characters."),
])
def test_the_fake_refuses_what_the_real_database_refuses(changes, key, message):
    assert message in validate_statement({**statement(), **changes})[key]


@pytest.fixture
def fake() -> Iterator[FakeTransparencyDatabase]:
    database = FakeTransparencyDatabase()
    with database.serve():
        yield database


def post(fake: FakeTransparencyDatabase, body: Any, path: str = "/api/v1/statements",
         **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {fake.token}", "Accept": "application/json", **headers}
    return httpx.post(fake.base_url + path, json=body, headers=headers)


def test_a_batch_with_one_bad_statement_stores_nothing(fake):
    batch = [statement(**NCII_TERMS), {**statement(), "content_date": "2026-5-3"},
             statement(**ACCOUNT_ONLY)]
    answer = post(fake, {"statements": batch})
    assert answer.status_code == 422
    assert answer.json() == {"errors": {"statement_1": {
        "content_date": ["The content date does not match the format YYYY-MM-DD."]}}}
    assert fake.stored == {}
    batch[1] = statement()
    answer = post(fake, {"statements": batch})
    assert answer.status_code == 201
    assert [stored["puid"] for stored in answer.json()["statements"]] == [s["puid"] for s in batch]
    assert all(sent.items() <= fake.stored[sent["puid"]].items() for sent in batch)


def test_a_puid_is_never_taken_twice(fake):
    first, second = statement(), statement()
    twice_in_one_call = post(fake, {"statements": [first, {**second, "puid": first["puid"]}]})
    assert twice_in_one_call.status_code == 422
    assert twice_in_one_call.json()["errors"]["existing_puids"] == [first["puid"]]
    assert post(fake, {"statements": [first]}).status_code == 201
    again = post(fake, {"statements": [second, first]})
    assert again.status_code == 422
    assert again.json() == {
        "message": "The platform identifier(s) are not all unique within this call.",
        "errors": {"puid": ["The platform identifier(s) are not all unique within this call."],
                   "existing_puids": [first["puid"]]}}
    one = post(fake, first, path="/api/v1/statement")
    assert one.status_code == 422 and one.json()["existing"] == {"puid": first["puid"]}
    assert list(fake.stored) == [first["puid"]]


def test_the_api_wants_a_token_json_and_1_to_100_statements(fake):
    good = statement()
    assert post(fake, {"statements": [good]}, Authorization="Bearer wrong").json() == {
        "message": "Unauthenticated."}
    # Laravel answers errors as JSON only to a client that accepts JSON; else it redirects.
    assert post(fake, {"statements": []}, Accept="*/*").status_code == 302
    for size in (0, 101):
        answer = post(fake, {"statements": [statement() for _ in range(size)]})
        assert answer.status_code == 422 and "statements" in answer.json()["errors"]
    single = post(fake, {**good, "category": "CSAM"}, path="/api/v1/statement")
    assert single.status_code == 422
    assert single.json() == {"message": "The selected category is invalid.",
                             "errors": {"category": ["The selected category is invalid."]}}
    assert post(fake, good, path="/api/v1/statement").status_code == 201


# --- the submitter -------------------------------------------------------------------------------


def add_pending(db: Database, count: int, due: datetime = T0, **broken: Any) -> list[str]:
    """``count`` pending statements, due at ``due``; ``broken`` overrides payload fields past
    our own checks (as if the database's rules had changed since)."""
    puids = [new_puid() for _ in range(count)]
    with db.session() as session:
        session.add_all(StatementOfReasons(
            puid=puid, decision_reference=f"act_{puid[-8:]}", next_attempt_at=due,
            payload={**statement_for(decision(), VOLUNTARY, NOT_AUTOMATED, puid), **broken})
            for puid in puids)
    return puids


def rows(db: Database) -> dict[str, StatementOfReasons]:
    with db.session() as session:
        return {row.puid: row for row in session.scalars(select(StatementOfReasons))}


def sender_for(db: Database, fake: FakeTransparencyDatabase, **options: Any) -> StatementSubmitter:
    return StatementSubmitter(db, fake.base_url, fake.token, **options)


def test_pending_statements_go_out_in_batches_of_at_most_100(db_url, fake):
    db = Database(db_url)
    puids = add_pending(db, 250)
    sender = sender_for(db, fake)
    results = [sender.submit_due(T0) for _ in range(4)]
    assert [result.stored for result in results] == [100, 100, 50, 0]
    assert fake.batch_sizes == [100, 100, 50]
    assert sorted(fake.stored) == sorted(puids)
    assert sender.overview() == {"pending": 0, "stored": 250, "rejected": 0, "failing": 0}
    assert all(aware(row.stored_at) == T0 for row in rows(db).values())


def test_failures_back_off_and_are_retried(db_url, fake):
    db = Database(db_url)
    puids = add_pending(db, 3)
    sender = sender_for(db, fake)
    fake.fail_next(1, status=500)
    assert sender.submit_due(T0) == SubmitResult(retrying=3)
    for row in rows(db).values():
        assert row.attempts == 1 and row.last_error.startswith("HTTP 500")
        assert timedelta(seconds=2.5) <= aware(row.next_attempt_at) - T0 <= timedelta(seconds=5)
    assert sender.submit_due(T0 + timedelta(seconds=2)) == SubmitResult()  # not yet: no call
    assert sender.overview()["failing"] == 3
    fake.fail_next(1, status=429)
    t1 = T0 + timedelta(seconds=5)
    assert sender.submit_due(t1) == SubmitResult(retrying=3)
    assert all(row.attempts == 2 and aware(row.next_attempt_at) <= t1 + timedelta(seconds=10)
               for row in rows(db).values())
    assert sender.submit_due(t1 + timedelta(seconds=10)) == SubmitResult(stored=3)
    assert fake.calls == 3 and sorted(fake.stored) == sorted(puids)


@pytest.mark.parametrize("loss", ["lost-201", "time-out"])
def test_a_lost_answer_is_not_a_lost_statement(db_url, fake, loss):
    """The database stored the batch, but the answer never came: the retry is told the puids
    exist, which means stored, and the statements sent with them go out next."""
    db = Database(db_url)
    first = add_pending(db, 2)
    sender = sender_for(db, fake, timeout_s=0.2)
    if loss == "lost-201":
        fake.lose_next_created()
    else:
        fake.delay_s = 0.5
    assert sender.submit_due(T0) == SubmitResult(retrying=2)
    assert sorted(fake.stored) == sorted(first)
    assert all(("HTTP 500" if loss == "lost-201" else "Timeout") in row.last_error
               for row in rows(db).values())
    fake.delay_s = 0
    later = T0 + timedelta(minutes=5)
    second = add_pending(db, 3, due=later)
    assert sender.submit_due(later) == SubmitResult(stored=2, retrying=3)
    assert sender.submit_due(later) == SubmitResult(stored=3)
    assert sorted(fake.stored) == sorted(first + second)
    assert sender.overview() == {"pending": 0, "stored": 5, "rejected": 0, "failing": 0}


def test_a_bad_statement_is_rejected_and_the_other_99_go_on_the_next_call(db_url, fake):
    db = Database(db_url)
    good = add_pending(db, 50)
    [bad] = add_pending(db, 1, category_specification=["KEYWORD_DANGEROUS_TOYS"])
    good += add_pending(db, 49)
    sender = sender_for(db, fake)
    assert sender.submit_due(T0) == SubmitResult(retrying=99, rejected=1)
    assert fake.stored == {}
    assert sender.submit_due(T0) == SubmitResult(stored=99)
    assert sorted(fake.stored) == sorted(good)
    assert sender.submit_due(T0 + timedelta(days=1)) == SubmitResult()  # never sent again
    assert sender.overview() == {"pending": 0, "stored": 99, "rejected": 1, "failing": 0}
    [rejected] = sender.rejected()
    assert rejected["puid"] == bad
    assert rejected["error"] == (
        "category_specification: The selected category specification is invalid.")
    assert rejected["statement"]["category_specification"] == ["KEYWORD_DANGEROUS_TOYS"]


def test_concurrent_senders_never_send_a_statement_twice(db_url, fake):
    db = Database(db_url)
    puids = add_pending(db, 300)

    def drain(sender: StatementSubmitter) -> int:
        stored = 0
        while result := sender.submit_due(T0).stored:
            stored += result
        return stored

    with ThreadPoolExecutor(4) as pool:
        totals = list(pool.map(drain, [sender_for(db, fake, batch_size=20) for _ in range(4)]))
    assert sum(totals) == 300
    assert sorted(fake.received) == sorted(puids)  # each sent once, none twice
    assert sender_for(db, fake).overview()["stored"] == 300


def test_an_unreachable_or_refusing_database_is_retried(db_url, fake):
    db = Database(db_url)
    [puid] = add_pending(db, 1)
    unreachable = StatementSubmitter(db, f"http://127.0.0.1:{free_port()}", fake.token)
    assert unreachable.submit_due(T0) == SubmitResult(retrying=1)
    assert "ConnectError" in rows(db)[puid].last_error
    wrong_token = StatementSubmitter(db, fake.base_url, "not-the-token")
    assert wrong_token.submit_due(T0 + timedelta(hours=1)) == SubmitResult(retrying=1)
    assert rows(db)[puid].last_error.startswith("HTTP 401") and rows(db)[puid].attempts == 2
    with pytest.raises(ValueError, match="batch_size"):
        StatementSubmitter(db, fake.base_url, fake.token, batch_size=101)
