"""Cases and queues: routing, SLA deadlines and alerts, and claims that never double-assign,
on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.test_notices import VIOLENCE, notice
from waakhond.cases.notices import CHILD_SAFETY, NoticeKind, Notices
from waakhond.cases.queues import Cases, Routing, Source, open_case, route
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.gateway.access import Scope
from waakhond.gateway.records import DecisionLog, Requester, Stage
from waakhond.store import Database


@pytest.mark.parametrize(("routing", "queue"), [
    (Routing(category=CHILD_SAFETY), "child_safety"),
    (Routing(labels=("POSSIBLE_MINOR", "ADULT_NUDITY")), "child_safety"),
    (Routing(labels=("NCII_REAL_PERSON",)), "intimate_imagery"),
    (Routing(category=VIOLENCE, intimate=True), "intimate_imagery"),
    (Routing(category=VIOLENCE, trusted=True), "trusted"),
    (Routing(category=VIOLENCE), "general"),
])
def test_routing(routing, queue):
    assert route(routing).name == queue


def verdict(action: Action, labels: list[str]) -> Verdict:
    """Signal level: a verdict as the policy gives it."""
    reason = Reason("test.rule", action, "a rule in a test", {})
    return Verdict(action, labels, [reason], None, "t", ["base"], Context.UPLOAD, None)


def test_notices_and_automated_verdicts_that_need_a_person_become_cases(db_url):
    db = Database(db_url)
    Notices(db).receive(notice(kind=NoticeKind.TAKE_IT_DOWN))
    log = DecisionLog(db)
    who = Requester(None, None, None)
    log.record(verdict(Action.REVIEW, ["NUDITY_UNCERTAIN"]), Stage.OUTPUT, "req_1", who)
    log.record(verdict(Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR"]), Stage.IMAGE, "req_2", who)
    log.record(verdict(Action.BLOCK, ["ADULT_NUDITY"]), Stage.IMAGE, "req_3", who)  # no case
    sizes = {q["queue"]: q["open"] for q in Cases(db).overview()}
    assert sizes == {"child_safety": 1, "intimate_imagery": 1, "trusted": 0, "general": 1,
                     "complaints": 0}


def test_the_legal_deadline_wins_when_it_is_sooner(db_url):
    db = Database(db_url)
    soon = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as session:
        reference = open_case(session, Source.NOTICE, "ntc_x",
                              Routing(category=VIOLENCE, legal_deadline=soon))
    case = Cases(db).get(reference)
    assert datetime.fromisoformat(case["due_at"]) <= soon + timedelta(seconds=1)
    overview = {q["queue"]: q for q in Cases(db).overview()}
    assert overview["general"]["due_soon"] == 1
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert {q["queue"]: q for q in Cases(db).overview(later)}["general"]["overdue"] == 1


def test_the_most_urgent_case_is_claimed_first_and_only_its_holder_releases_it(db_url):
    db = Database(db_url)
    notices = Notices(db)
    notices.receive(notice())
    child = notices.receive(notice(category=CHILD_SAFETY))
    cases = Cases(db)
    first = cases.claim_next("ann")
    assert first["source_reference"] == child.reference and first["assignee"] == "ann"
    assert not cases.release(first["reference"], "bob")
    assert cases.release(first["reference"], "ann")
    assert cases.claim_next("bob", queue="child_safety")["reference"] == first["reference"]
    with pytest.raises(ValueError, match="queue"):
        cases.claim_next("bob", queue="nope")


def test_concurrent_reviewers_are_never_given_the_same_case(db_url):
    db = Database(db_url)
    notices = Notices(db)
    for _ in range(30):
        notices.receive(notice())
    cases = Cases(db)
    with ThreadPoolExecutor(6) as pool:
        claimed = list(pool.map(lambda n: cases.claim_next(f"reviewer {n % 6}"), range(36)))
    references = [c["reference"] for c in claimed if c is not None]
    assert len(references) == 30 == len(set(references))
    assert claimed.count(None) == 6


def test_cases_over_the_api(client):
    Notices(client.gateway.decisions.db).receive(notice(category=CHILD_SAFETY))
    token = client.gateway.keys.create("desk", [Scope.MODERATE.value]).token
    client.headers["Authorization"] = f"Bearer {token}"
    sizes = client.get("/v1/cases/queues").json()
    claimed = client.post("/v1/cases/claim").json()
    empty = client.post("/v1/cases/claim")
    released = client.post(f"/v1/cases/{claimed['reference']}/release").json()
    metrics = client.get("/metrics").text
    assert sizes[0] == {"queue": "child_safety", "sla_hours": 1.0, "open": 1, "assigned": 0,
                        "overdue": 0, "due_soon": 0, "next_due_at": sizes[0]["next_due_at"]}
    assert sizes[0]["next_due_at"] > sizes[0]["next_due_at"][:10]  # an ISO time, set
    assert claimed["queue"] == "child_safety" and claimed["assignee"].startswith("key:")
    assert empty.status_code == 404
    assert released["status"] == "open"
    assert 'waakhond_cases{queue="child_safety",state="open"} 1.0' in metrics
