"""Webhooks to the platform: signed (HMAC with a signed timestamp), retried with back-off,
sent once per round however many senders run, visible when they keep failing, and harmless
when they arrive twice. Deliveries go to a real HTTP receiver on loopback; the outbox runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sqlalchemy import delete

from tests.webhook_receiver import Fault, Receiver, receiving
from waakhond.api.errors import install_handlers
from waakhond.api.webhooks import router
from waakhond.gateway.access import Scope
from waakhond.store import Database
from waakhond.store.models import WebhookDelivery
from waakhond.webhooks import FAILING_AFTER, Webhooks, enqueue, sign, verify_signature

SECRET = "whsec_test-secret"
RESTRICTION = {"decision": "act_1", "content": "https://example.org/p/1",
               "visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"]}


@pytest.fixture(scope="module")
def shared_db(module_db_url: str) -> Database:
    return Database(module_db_url)


@pytest.fixture
def db(shared_db: Database) -> Database:
    """One database per backend for the module (migrating one takes a while), emptied for
    each test."""
    with shared_db.session() as session:
        session.execute(delete(WebhookDelivery))
    return shared_db


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET) as found:
        yield found


@contextmanager
def sender(db: Database, url: str, secret: str = SECRET, timeout_s: float = 2
           ) -> Iterator[Webhooks]:
    webhooks = Webhooks(db, url, secret, timeout_s)
    try:
        yield webhooks
    finally:
        webhooks.close()


@pytest.fixture
def webhooks(db: Database, receiver: Receiver) -> Iterator[Webhooks]:
    with sender(db, receiver.url) as found:
        yield found


def add_event(db: Database) -> str:
    with db.session() as session:
        return enqueue(session, "restriction.applied", RESTRICTION)


def hours_later(hours: float) -> datetime:
    """Past any back-off of that many hours, without waiting for it."""
    return datetime.now(UTC) + timedelta(hours=hours)


def test_a_signature_checks_out_only_unchanged_and_recent():
    body, now = b'{"id":"evt_1"}', time.time()
    stamp = int(now)
    signature = sign(SECRET, stamp, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature(SECRET, str(stamp), body, signature, now=now)
    assert not verify_signature(SECRET, str(stamp), body + b" ", signature, now=now)
    assert not verify_signature("another secret", str(stamp), body, signature, now=now)
    assert not verify_signature(SECRET, str(stamp + 1), body, signature, now=now)
    assert not verify_signature(SECRET, str(stamp), body, signature, now=now + 301)  # replay
    assert not verify_signature(SECRET, "yesterday", body, signature, now=now)
    assert not verify_signature(SECRET, str(stamp), body, "sha256=ünïcode", now=now)


def test_an_event_is_delivered_signed_once(db, receiver, webhooks):
    event_id = add_event(db)
    assert webhooks.overview() == {"pending": 1, "delivered": 0, "failing": 0}
    assert webhooks.deliver_due() == 1
    assert webhooks.deliver_due() == 0
    [event] = receiver.applied
    assert event["id"] == event_id and event["type"] == "restriction.applied"
    assert event["data"] == RESTRICTION
    assert datetime.fromisoformat(event["created_at"]).tzinfo is not None
    assert receiver.received == [event_id] and receiver.rejected == 0
    delivered = webhooks.get(event_id)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 1
    assert delivered["delivered_at"] is not None


def test_a_receiver_refuses_a_wrong_signature(db, receiver):
    event_id = add_event(db)
    with sender(db, receiver.url, "not the secret") as impostor:
        assert impostor.deliver_due() == 0
        assert impostor.get(event_id)["last_error"] == "HTTP 401 Unauthorized"
    assert receiver.rejected == 1 and receiver.applied == []


def test_failures_are_retried_with_back_off_and_applied_once(db, receiver, webhooks):
    event_id = add_event(db)
    receiver.inject(Fault.FAIL, times=2)
    before = datetime.now(UTC)
    assert webhooks.deliver_due() == 0
    waiting = webhooks.get(event_id)
    next_attempt = datetime.fromisoformat(waiting["next_attempt_at"])
    assert timedelta(seconds=2) < next_attempt - before < timedelta(seconds=6)
    assert waiting["attempts"] == 1 and waiting["last_error"] == "HTTP 500 Internal Server Error"
    assert webhooks.deliver_due() == 0  # not due yet: nothing sent
    assert len(receiver.received) == 1
    assert webhooks.deliver_due(now=hours_later(1)) == 0
    assert webhooks.deliver_due(now=hours_later(2)) == 1
    assert receiver.received == [event_id] * 3
    assert [event["id"] for event in receiver.applied] == [event_id]
    assert webhooks.get(event_id)["attempts"] == 3


def test_a_duplicate_after_a_lost_acknowledgement_is_harmless(db, receiver, webhooks):
    event_id = add_event(db)
    receiver.inject(Fault.LOSE_ANSWER)
    assert webhooks.deliver_due() == 0  # applied, but we never heard so
    assert webhooks.deliver_due(now=hours_later(1)) == 1
    assert receiver.received == [event_id, event_id]
    assert [event["id"] for event in receiver.applied] == [event_id]


def test_a_receiver_past_the_time_out_is_retried_harmlessly(db, receiver, webhooks):
    event_id = add_event(db)
    receiver.hang_s = 0.2
    receiver.inject(Fault.HANG)
    with sender(db, receiver.url, timeout_s=0.05) as impatient:
        assert impatient.deliver_due() == 0
    assert webhooks.get(event_id)["last_error"] == "no answer: ReadTimeout"
    assert webhooks.deliver_due(now=hours_later(1)) == 1
    receiver.wait_until_handled(2)  # the hung copy too, applied late (or first) but once
    assert [event["id"] for event in receiver.applied] == [event_id]


def test_deliveries_that_keep_failing_become_visible_and_can_be_retried(db, receiver,
                                                                         webhooks):
    event_id = add_event(db)
    receiver.inject(Fault.FAIL, times=FAILING_AFTER)
    for attempt in range(1, FAILING_AFTER + 1):
        moment = hours_later(attempt)
        assert webhooks.deliver_due(now=moment) == 0
        expected = "failing" if attempt == FAILING_AFTER else "pending"
        assert webhooks.get(event_id)["status"] == expected
    assert webhooks.overview() == {"pending": 0, "delivered": 0, "failing": 1}
    [failing] = webhooks.list("failing")
    assert failing["attempts"] == FAILING_AFTER and SECRET not in failing["last_error"]
    # Still retried, at most an hour after the last attempt.
    assert datetime.fromisoformat(failing["next_attempt_at"]) <= moment + timedelta(hours=1)
    webhooks.update_metrics()
    assert 'waakhond_webhook_deliveries{status="failing"} 1.0' in generate_latest().decode()
    assert webhooks.retry_now(event_id)
    assert webhooks.deliver_due() == 1
    assert not webhooks.retry_now(event_id)  # delivered: nothing to retry
    assert webhooks.overview() == {"pending": 0, "delivered": 1, "failing": 0}
    assert [event["id"] for event in receiver.applied] == [event_id]


def test_concurrent_senders_never_send_an_event_twice(db, receiver):
    event_ids = {add_event(db) for _ in range(20)}
    start_together = Barrier(2)

    def send(webhooks: Webhooks) -> int:
        start_together.wait()
        return webhooks.deliver_due()

    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        senders = [stack.enter_context(sender(db, receiver.url)) for _ in range(2)]
        delivered = list(pool.map(send, senders))
    assert sum(delivered) == 20
    assert sorted(receiver.received) == sorted(event_ids)


def test_an_event_rolled_back_with_its_decision_is_never_sent(db, receiver, webhooks):
    with pytest.raises(RuntimeError), db.session() as session:
        enqueue(session, "restriction.applied", RESTRICTION)
        raise RuntimeError("the decision failed")
    assert webhooks.deliver_due() == 0
    assert webhooks.overview() == {"pending": 0, "delivered": 0, "failing": 0}
    assert receiver.received == []


def api(client: TestClient, webhooks: Webhooks | None, scope: Scope = Scope.ADMIN
        ) -> TestClient:
    """The webhooks router alone, on the test gateway's keys, with a key of ``scope``."""
    app = FastAPI()
    app.state.gateway = client.gateway  # type: ignore[attr-defined]
    app.state.webhooks = webhooks
    install_handlers(app)
    app.include_router(router)
    token = client.gateway.keys.create("ops", [scope.value]).token  # type: ignore[attr-defined]
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_operators_see_failing_deliveries_and_retry_them(client, receiver):
    db = client.gateway.decisions.db
    event_id = add_event(db)
    receiver.inject(Fault.FAIL, times=FAILING_AFTER)
    with sender(db, receiver.url) as webhooks:
        for attempt in range(1, FAILING_AFTER + 1):
            webhooks.deliver_due(now=hours_later(attempt))
        http = api(client, webhooks)
        listing = http.get("/v1/webhooks").json()
        details = http.get(f"/v1/webhooks/{event_id}").json()
        retried = http.post(f"/v1/webhooks/{event_id}/retry").json()
        assert webhooks.deliver_due() == 1
        again = http.post(f"/v1/webhooks/{event_id}/retry")
        assert http.get("/v1/webhooks/evt_nope").status_code == 404
        moderator = api(client, webhooks, Scope.MODERATE).get("/v1/webhooks")
    assert listing["counts"]["failing"] == 1
    assert [found["event_id"] for found in listing["deliveries"]] == [event_id]
    assert details["data"] == RESTRICTION and details["attempts"] == FAILING_AFTER
    assert retried["status"] == "failing"
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_delivered"
    assert moderator.status_code == 403


def test_the_api_says_when_webhooks_are_not_configured(client):
    answer = api(client, None).get("/v1/webhooks")
    assert answer.status_code == 409
    assert "WAAKHOND_WEBHOOK_URL" in answer.json()["error"]["message"]
