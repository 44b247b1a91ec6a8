"""Notices (DSA Art. 16), TAKE IT DOWN requests and authority orders: intake rules, priority,
status for the notifier, and no acknowledged notice lost when the server is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import httpx
import pytest

from tests.gateway_server import free_port
from tests.test_cli_gateway import _wait_ready
from waakhond.api.notices import ANONYMOUS_NOTICES_PER_MINUTE
from waakhond.cases.notices import (
    CHILD_SAFETY,
    NoticeError,
    NoticeInput,
    NoticeKind,
    Notices,
)
from waakhond.gateway.access import Scope
from waakhond.store import Database

VIOLENCE = "STATEMENT_CATEGORY_CYBER_VIOLENCE"


def notice(**changes: object) -> NoticeInput:
    fields = {"kind": NoticeKind.ART16, "category": VIOLENCE,
              "location": "https://example.org/p/1", "explanation": "a fake nude of me",
              "good_faith": True, "notifier_name": "A. Person",
              "notifier_email": "a@example.org", **changes}
    return NoticeInput(**fields)  # type: ignore[arg-type]


def test_a_child_abuse_notice_may_be_anonymous_others_may_not(db_url):
    notices = Notices(Database(db_url))
    notices.receive(notice(category=CHILD_SAFETY, notifier_name=None, notifier_email=None))
    with pytest.raises(NoticeError, match="name"):
        notices.receive(notice(notifier_name=None, notifier_email=None))


@pytest.mark.parametrize(("changes", "message"), [
    ({"good_faith": False}, "good faith"),
    ({"location": " "}, "location"),
    ({"category": "STATEMENT_CATEGORY_NOPE"}, "category"),
    ({"kind": NoticeKind.AUTHORITY_ORDER}, "authority"),
])
def test_incomplete_notices_are_refused_with_the_reason(db_url, changes, message):
    with pytest.raises(NoticeError, match=message):
        Notices(Database(db_url)).receive(notice(**changes))


def test_the_queue_puts_child_safety_first_then_trusted_flaggers_then_deadlines(db_url):
    notices = Notices(Database(db_url))
    plain = notices.receive(notice())
    takedown = notices.receive(notice(kind=NoticeKind.TAKE_IT_DOWN))
    flagged = notices.receive(notice(), trusted_flagger="Offlimits")
    child = notices.receive(notice(category=CHILD_SAFETY))
    order = [n["reference"] for n in notices.queue()]
    assert order == [child.reference, flagged.reference, takedown.reference, plain.reference]
    assert takedown.deadline_at - takedown.received_at == timedelta(hours=48)


def test_only_the_notifier_sees_the_status(db_url):
    notices = Notices(Database(db_url))
    receipt = notices.receive(notice())
    assert notices.status(receipt.reference, receipt.status_secret)["status"] == "received"
    assert notices.status(receipt.reference, "wrong") is None
    assert notices.status("ntc_nope", receipt.status_secret) is None


def test_notices_over_the_api(client):
    anonymous = client.post("/v1/notices", json={
        "category": CHILD_SAFETY, "location": "https://example.org/x", "good_faith": True,
        "explanation": "an image of a child in a sexual context"})
    assert anonymous.status_code == 201
    receipt = anonymous.json()
    assert "received your notice" in receipt["message"]
    status = client.get(f"/v1/notices/{receipt['reference']}",
                        headers={"X-Notice-Secret": receipt["status_secret"]})
    assert status.json()["status"] == "received"
    refused = client.post("/v1/notices", json={
        "category": VIOLENCE, "location": "x", "good_faith": True, "explanation": "x"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_notice"

    flagger = client.gateway.keys.create("Offlimits", [Scope.FLAG.value]).token
    client.post("/v1/notices", headers={"Authorization": f"Bearer {flagger}"}, json={
        "category": VIOLENCE, "location": "https://example.org/y", "good_faith": True,
        "explanation": "a deepfake", "notifier_name": "Offlimits",
        "notifier_email": "desk@example.org"})
    order = client.post("/v1/notices", json={
        "kind": "authority_order", "category": VIOLENCE, "location": "https://example.org/z",
        "good_faith": True, "explanation": "order 12", "notifier_name": "Court",
        "notifier_email": "c@example.org", "authority": "Rechtbank Amsterdam"})
    assert order.status_code == 401
    moderator = client.gateway.keys.create("staff", [Scope.MODERATE.value]).token
    queue = client.get("/v1/notices", headers={"Authorization": f"Bearer {moderator}"}).json()
    assert [n["priority"] for n in queue] == [0, 1]
    assert queue[1]["trusted_flagger"] == "Offlimits"


def test_anonymous_notices_are_rate_limited_per_address(client):
    body = {"category": CHILD_SAFETY, "location": "https://example.org/x", "good_faith": True,
            "explanation": "reported in a test"}
    statuses = [client.post("/v1/notices", json=body).status_code
                for _ in range(ANONYMOUS_NOTICES_PER_MINUTE + 1)]
    assert statuses[:-1] == [201] * ANONYMOUS_NOTICES_PER_MINUTE and statuses[-1] == 429


@pytest.mark.models
def test_a_killed_server_loses_no_acknowledged_notice(tmp_path):
    """kill -9 in the middle of notice intake: every notice that got a receipt is stored."""
    port = free_port()
    env = {**os.environ, "WAAKHOND_DATA": str(tmp_path)}
    env.pop("WAAKHOND_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "waakhond.cli", "serve", "--port",
                               str(port)], env=env, stderr=subprocess.DEVNULL)
    acknowledged: list[str] = []
    stop = threading.Event()

    def send() -> None:
        # A trusted flagger's key: anonymous senders are limited to a few notices a minute.
        token = (tmp_path / "admin-key.txt").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            while not stop.is_set():
                try:
                    answer = http.post("/v1/notices", json={
                        "category": CHILD_SAFETY, "location": "https://example.org/k",
                        "good_faith": True, "explanation": "reported in a durability test"})
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 201:
                    acknowledged.append(answer.json()["reference"])

    try:
        assert _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        senders = [threading.Thread(target=send) for _ in range(4)]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    finally:
        stop.set()
        server.kill()
    for thread in senders:
        thread.join(timeout=10)
    stored = Notices(Database(f"sqlite:///{tmp_path / 'waakhond.db'}")).references()
    assert len(acknowledged) >= 50
    assert set(acknowledged) <= stored
