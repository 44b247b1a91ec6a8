"""The public forms over HTTP: TAKE IT DOWN (the 48-hour clock), the appeal of a decision by
its notifier, and the face opt-out (real face model: the photo is embedded and discarded).
The notice form and the victim portal are tested in chromium (test_web_pages.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.web_cases import FACES
from waakhond.api.app import create_app
from waakhond.cases.decisions import DecisionInput, Decisions, Outcome
from waakhond.cases.notices import NoticeInput, NoticeKind, Notices
from waakhond.cases.queues import Cases
from waakhond.config import GatewaySettings
from waakhond.gateway.setup import build_gateway
from waakhond.store import Database
from waakhond.store.models import ConsentEnrolment


def test_a_take_it_down_request_gets_its_48_hour_deadline(client: TestClient) -> None:
    incomplete = client.post("/takedown", data={"location": "https://x.example/a",
                                                "explanation": "It shows me.",
                                                "good_faith": "yes"})
    assert incomplete.status_code == 400 and "Give your name." in incomplete.text
    sent = client.post("/takedown", data={
        "location": "https://x.example/a", "explanation": "An intimate photo of me.",
        "notifier_name": "Jane Doe", "notifier_email": "jane@example.org",
        "good_faith": "yes"})
    assert sent.status_code == 201 and "Deadline for our decision" in sent.text
    reference = re.search(r'id="reference">([^<]+)<', sent.text).group(1)  # type: ignore[union-attr]
    notice = Notices(client.gateway.decisions.db).queue()[0]  # type: ignore[attr-defined]
    assert notice["reference"] == reference and notice["kind"] == "take_it_down"
    assert notice["deadline_at"]


def test_a_notifier_appeals_a_declined_notice(client: TestClient) -> None:
    db = client.gateway.decisions.db  # type: ignore[attr-defined]
    receipt = Notices(db).receive(NoticeInput(
        NoticeKind.ART16, "STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "https://shop.example/1",
        "A fake shop.", True, "Jane Doe", "jane@example.org"))
    case = Cases(db).claim_next("reviewer 1")
    assert case is not None
    decided = Decisions(db).decide(case["reference"], "reviewer 1",
                                   DecisionInput(outcome=Outcome.NO_ACTION, facts=""))
    wrong = client.post("/appeal", data={"decision": decided.reference, "secret": "guess",
                                         "explanation": "It is a scam."})
    assert wrong.status_code == 400 and "No decision matches" in wrong.text
    sent = client.post("/appeal", data={"decision": decided.reference,
                                        "secret": receipt.status_secret,
                                        "explanation": "It is a scam: see the reviews."})
    assert sent.status_code == 201 and "cmp_" in sent.text
    assert [queue["open"] for queue in Cases(db).overview()
            if queue["queue"] == "complaints"] == [1]


@pytest.fixture
def with_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with the real screener: enrolment needs the face detector and embedder."""
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    settings = GatewaySettings()
    gateway = build_gateway(settings, db=Database(f"sqlite:///{tmp_path / 'w.db'}"))
    with TestClient(create_app(gateway, settings)) as test_client:
        yield test_client


@pytest.mark.models
def test_a_face_is_opted_out_and_deleted_without_keeping_the_photo(
        with_models: TestClient) -> None:
    client = with_models
    photo = (FACES / "img1.jpg").read_bytes()
    refused = client.post("/opt-out", files={"photos": ("me.jpg", photo, "image/jpeg")},
                          data={"scope": "no_sexual", "enrolled_by": "self"})
    assert refused.status_code == 400 and "Tick the agreement" in refused.text
    enrolled = client.post("/opt-out", files={"photos": ("me.jpg", photo, "image/jpeg")},
                           data={"scope": "no_sexual", "enrolled_by": "self", "consent": "yes"})
    assert enrolled.status_code == 201, enrolled.text
    reference = re.search(r'id="reference">([^<]+)<', enrolled.text).group(1)  # type: ignore[union-attr]
    secret = re.search(r'id="secret">([^<]+)<', enrolled.text).group(1)  # type: ignore[union-attr]
    deleted = client.post("/opt-out/manage", data={"reference": reference, "secret": secret,
                                                   "delete": "yes"})
    assert deleted.status_code == 200 and 'id="enrolment-status"' in deleted.text
    assert client.post("/opt-out/manage", data={"reference": reference,
                                                "secret": "guess"}).status_code == 404


def test_opt_out_on_a_server_without_face_models_says_so_and_stores_nothing(
        client: TestClient) -> None:
    photo = (FACES / "img1.jpg").read_bytes()
    page = client.post("/opt-out", files={"photos": ("me.jpg", photo, "image/jpeg")},
                       data={"scope": "no_sexual", "enrolled_by": "self", "consent": "yes"})
    api = client.post("/v1/consent/enrolments", files=[("photos", ("me.jpg", photo))],
                      data={"scope": "no_edits"})

    assert page.status_code == 503 and "without the face models" in page.text
    assert api.status_code == 503 and api.json()["error"]["code"] == "unavailable"
    with client.gateway.decisions.db.session() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(ConsentEnrolment)) == 0
