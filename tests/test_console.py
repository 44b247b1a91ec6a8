"""The console over HTTP, without a browser: decisions with their DSA checks, reveals (logged,
CSRF-protected, grayscale or colour), prompts revealed as text, complaints answered by another
reviewer, and the dashboard. The browser flow is in test_web_pages.py."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.web_cases import FACES, PASSWORD, console_app, seed_case
from waakhond.audit import AuditLog

pytestmark = pytest.mark.skipif(not FACES.exists(), reason="../shared/data/faces is missing")


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    app, gateway = console_app(tmp_path, {"rita": ["reviewer"], "sam": ["reviewer"]})
    with TestClient(app) as client:
        client.gateway = gateway  # type: ignore[attr-defined]
        yield client


def sign_in(client: TestClient, username: str) -> str:
    client.cookies.clear()
    page = client.get("/console/login").text
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/console/login", data={"username": username, "password": PASSWORD,
                                        "login_csrf": login_csrf})
    return re.search(r'name="csrf-token" content="([^"]+)"',  # type: ignore[union-attr]
                     client.get("/console").text).group(1)


def take(client: TestClient, csrf: str) -> str:
    answer = client.post("/console/claim", data={"csrf": csrf}, follow_redirects=False)
    return answer.headers["location"]


def test_a_decision_needs_what_the_dsa_asks_and_then_makes_a_statement(
        console: TestClient) -> None:
    seed_case(console.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg")  # type: ignore[attr-defined]
    csrf = sign_in(console, "rita")
    case = take(console, csrf)
    incomplete = console.post(f"{case}/decision", data={"csrf": csrf, "outcome": "restrict",
                                                        "visibility": "DECISION_VISIBILITY_"
                                                                      "CONTENT_REMOVED"})
    assert incomplete.status_code == 400 and 'role="alert"' in incomplete.text
    assert "say the ground" in incomplete.text
    unknown = console.post(f"{case}/decision", data={"csrf": csrf, "outcome": "maybe"})
    assert unknown.status_code == 400 and "outcome" in unknown.text
    decided = console.post(f"{case}/decision", follow_redirects=False, data={
        "csrf": csrf, "outcome": "restrict", "ground": "terms",
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
        "visibility": "DECISION_VISIBILITY_CONTENT_REMOVED", "synthetic": "yes",
        "keywords": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",
        "facts": "An intimate image of a real person, made without consent."})
    assert decided.status_code == 303 and "done=act_" in decided.headers["location"]
    page = console.get(decided.headers["location"]).text
    assert "act_" in page and 'id="decision-form"' not in page  # decided: no form any more


def test_reveals_are_logged_and_need_the_csrf_token(console: TestClient) -> None:
    decision = seed_case(console.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg",  # type: ignore[attr-defined]
                         prompt="make her look older")
    csrf = sign_in(console, "rita")
    case = take(console, csrf)
    prompt_item, image_item = console.gateway.decisions.get(decision)["evidence_items"]  # type: ignore[attr-defined]
    assert console.post(f"{case}/reveal/{image_item}", data={"view": "colour"}).status_code == 403
    blurred = Image.open(io.BytesIO(console.get(f"{case}/preview/{image_item}").content))
    assert blurred.mode == "L" and max(blurred.size) <= 320
    colour = console.post(f"{case}/reveal/{image_item}", data={"csrf": csrf, "view": "colour"})
    assert Image.open(io.BytesIO(colour.content)).mode == "RGB"
    text = console.post(f"{case}/reveal/{prompt_item}", data={"csrf": csrf})
    assert text.text == "make her look older"
    assert console.get(f"{case}/preview/{prompt_item}").status_code == 403  # text: no preview
    reveals = [entry for entry in AuditLog(console.gateway.decisions.db).entries()  # type: ignore[attr-defined]
               if entry["action"] == "preview.reveal"]
    assert [(entry["actor"], entry["details"]["view"]) for entry in reveals] == [
        ("account:1 (rita)", "colour"), ("account:1 (rita)", "grayscale")]


def test_only_the_holder_decides_and_a_case_can_be_given_back(console: TestClient) -> None:
    seed_case(console.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg")  # type: ignore[attr-defined]
    csrf = sign_in(console, "rita")
    case = take(console, csrf)
    other = sign_in(console, "sam")
    assert 'id="decision-form"' not in console.get(case).text
    refused = console.post(f"{case}/decision", data={"csrf": other, "outcome": "no_action"})
    assert refused.status_code == 400
    csrf = sign_in(console, "rita")
    console.post(f"{case}/release", data={"csrf": csrf})
    assert console.get(case).text.count("assigned") == 0


def test_the_dashboard_draws_its_charts(console: TestClient) -> None:
    seed_case(console.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg")  # type: ignore[attr-defined]
    sign_in(console, "rita")
    page = console.get("/console/dashboard?days=7")
    assert page.status_code == 200
    assert page.text.count("<svg") == 4 and "NCII_REAL_PERSON" in page.text
    assert "<script>" not in page.text.replace('<script type="module"', "")
