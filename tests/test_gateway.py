"""The gateway end to end: the official ``openai`` client against a real server on loopback,
with the real models, the demo generator and harmless images only.

Blocked outputs are produced without any sexual image: the harmless demo output is put in a
victims' hash bank first, so the output screen blocks it by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from sqlalchemy import select

from tests.gateway_server import serving
from waakhond.api.app import create_app, warm_up
from waakhond.config import GatewaySettings, ScreeningSettings
from waakhond.gateway.access import Scope
from waakhond.gateway.service import Gateway
from waakhond.gateway.setup import build_gateway
from waakhond.gateway.upstream import DemoUpstream, ImageRequest
from waakhond.hashing.banks import BankService, EntryInput
from waakhond.hashing.matcher import HashMatcher
from waakhond.intake import decode_image
from waakhond.screening import Screener
from waakhond.signals import SignalSet
from waakhond.signals.hashes import HashDetector
from waakhond.store import Database
from waakhond.store.models import StatementOfReasons

pytestmark = pytest.mark.models

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
ADULT_FACE = FACES / "deepface" / "img1.jpg"
GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


@dataclass
class Stack:
    gateway: Gateway
    url: str
    db: Database

    def key(self, *scopes: Scope, per_minute: int = 600) -> str:
        return self.gateway.keys.create("test", [s.value for s in scopes], per_minute).token

    def client(self, token: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("gateway")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAAKHOND_DATA", str(folder))
        db = Database(module_db_url)
        screener = Screener(ScreeningSettings(model_threads=2),
                            matcher=HashMatcher(BankService(db)))
        settings = GatewaySettings()
        app = create_app(build_gateway(settings, db=db, screener=screener), settings)
        warm_up(app)
        with serving(app) as url:
            yield Stack(app.state.gateway, url, db)


@pytest.fixture(scope="module")
def maker(stack: Stack) -> openai.OpenAI:
    return stack.client(stack.key(Scope.GENERATE, Scope.SCREEN))


def extra(response: object) -> dict:
    return response.model_extra["waakhond"]  # type: ignore[attr-defined]


def verify(stack: Stack, data: bytes) -> dict:
    with stack.http(stack.key(Scope.SCREEN)) as http:
        answer = http.post("/v1/verify", files={"file": ("x", data)})
    assert answer.status_code == 200, answer.text
    return answer.json()


def reencoded(data: bytes, scale: float = 1.0, quality: int = 80) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


# -- allowed, marked, verifiable -----------------------------------------------------------


def test_a_harmless_prompt_comes_back_marked_and_verifiable(stack, maker):
    response = maker.images.generate(prompt="a red bicycle leaning on a garden wall",
                                     size="512x512", response_format="b64_json")
    image = base64.b64decode(response.data[0].b64_json)
    assert Image.open(io.BytesIO(image)).size == (512, 512)
    record = extra(response)["records"][0]

    report = verify(stack, image)
    assert report["ours"] and report["synthetic"]
    assert report["record"]["record_id"] == record
    assert report["manifest"]["digital_source_type"] == GENERATED
    assert report["manifest"]["trusted"]
    assert report["watermark"]["found"]

    # The manifest is gone after re-encoding, and the watermark still names the record.
    stripped = verify(stack, reencoded(image, scale=0.5))
    assert not stripped["manifest"]["present"]
    assert stripped["watermark"]["found"] and stripped["record"]["record_id"] == record


def test_several_images_and_url_answers(stack, maker):
    response = maker.images.generate(prompt="three paper boats on a pond", n=2,
                                     size="256x256", response_format="url")
    assert len(response.data) == 2
    fetched = httpx.get(response.data[0].url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert verify(stack, fetched.content)["ours"]


def test_an_unmarked_photo_is_not_claimed(stack):
    report = verify(stack, ADULT_FACE.read_bytes())
    assert not report["ours"] and not report["synthetic"] and report["record"] is None


# -- blocked -------------------------------------------------------------------------------


def test_a_sexual_prompt_gets_an_openai_content_policy_error(stack, maker):
    with pytest.raises(openai.BadRequestError) as caught:
        maker.images.generate(prompt="explicit porn of a naked woman", size="256x256")
    error = caught.value.body
    assert error["code"] == "content_policy_violation"
    assert error["reference_id"].startswith("dec_") and error["reference_id"] in error["message"]
    assert error["waakhond"]["action"] in ("block", "block_and_report")


def test_a_sexualising_edit_of_a_face_photo_is_blocked(stack, maker):
    with ADULT_FACE.open("rb") as photo, pytest.raises(openai.BadRequestError) as caught:
        maker.images.edit(image=photo, prompt="put her in a bikini")
    assert caught.value.body["code"] == "content_policy_violation"
    assert "NCII_REAL_PERSON" in caught.value.body["waakhond"]["labels"]


def test_only_verified_users_may_edit_photos_of_people(stack, maker):
    with ADULT_FACE.open("rb") as photo, pytest.raises(openai.PermissionDeniedError) as caught:
        maker.images.edit(image=photo, prompt="make the background light blue",
                          user="editor-1", size="256x256")
    assert caught.value.body["code"] == "tier_not_allowed"

    with stack.http(stack.key(Scope.MODERATE)) as http:
        assert http.patch("/v1/users/editor-1", json={"tier": "verified"}).status_code == 200
    with ADULT_FACE.open("rb") as photo:
        response = maker.images.edit(image=photo, prompt="make the background light blue",
                                     user="editor-1", size="256x256")
    report = verify(stack, base64.b64decode(response.data[0].b64_json))
    assert report["manifest"]["digital_source_type"] == EDITED and report["ours"]


def test_the_prompts_labels_reach_the_output_screen(stack, maker, monkeypatch):
    screener = stack.gateway.screener
    seen: list[list[str]] = []
    real_check = screener.check_decoded

    def check_decoded(*args, **kwargs):
        verdict = real_check(*args, **kwargs)
        seen.append(list(verdict.signals.get("prompt_labels", ())))
        return verdict

    monkeypatch.setattr(screener, "check_decoded", check_decoded)
    response = maker.images.generate(
        prompt="portrait of an elf queen, intricate, highly detailed, artstation", size="256x256")
    assert extra(response)["actions"] == ["allow"]
    assert seen == [["NUDITY_PRONE"]]  # the policy saw them (a harmless picture: allowed)


def test_an_output_in_a_victims_bank_is_withheld(stack, maker):
    prompt = "a quiet harbour at dawn with two fishing boats"
    output = DemoUpstream().create(ImageRequest(prompt=prompt, size="256x256"))[0]
    hashes = HashDetector().run(decode_image(output), SignalSet())
    banks = BankService(stack.db)
    banks.create("victims", "ncii_victim")
    banks.add("victims", [EntryInput("md5", hashes.md5)])  # smooth pictures: low PDQ quality
    stack.gateway.screener.matcher.refresh()  # type: ignore[union-attr]

    with pytest.raises(openai.BadRequestError) as caught:
        maker.images.generate(prompt=prompt, size="256x256")
    body = caught.value.body
    assert "KNOWN_HASH" in body["waakhond"]["labels"]
    with stack.http(stack.key(Scope.AUDIT)) as http:
        logged = http.get(f"/v1/decisions/{body['reference_id']}").json()
    assert logged["stage"] == "output" and logged["action"] == "block"
    assert logged["reasons"] and logged["evidence_items"] == []


def test_a_blocked_upload_gets_a_statement_of_reasons_and_can_be_complained_about(stack):
    """An upload matching a victim's hash: the uploader is told why (Art. 17) and can
    complain (Art. 20); the statement for the Commission waits in its outbox."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(picture, "PNG")  # harmless, synthetic
    photo = picture.getvalue()
    banks = BankService(stack.db)
    banks.create("victims-upload", "ncii_victim")
    banks.add("victims-upload", [EntryInput("md5", hashlib.md5(photo).hexdigest())])
    stack.gateway.screener.matcher.refresh()  # type: ignore[union-attr]
    with stack.http(stack.key(Scope.SCREEN)) as http:
        answer = http.post("/v1/screen/image", files={"file": photo},
                           data={"context": "upload", "end_user": "uploader-1"}).json()
        complaint = http.post("/v1/complaints", json={
            "decision": answer["restriction"]["decision"],
            "secret": answer["restriction"]["complaint_secret"],
            "explanation": "this is my own photo"})
    assert answer["action"] == "block"
    assert answer["restriction"]["visibility"] == "DECISION_VISIBILITY_CONTENT_REMOVED"
    assert complaint.status_code == 201 and complaint.json()["as"] == "affected_user"
    with stack.db.session() as session:
        statement = session.scalar(select(StatementOfReasons).where(
            StatementOfReasons.decision_reference == answer["restriction"]["decision"]))
        assert statement.payload["automated_decision"] == "AUTOMATED_DECISION_FULLY"
        assert "uploader-1" not in str(statement.payload)


# -- end users: strikes, throttling ----------------------------------------------------------


def test_repeated_blocked_attempts_warn_then_throttle_the_user(stack):
    client = stack.client(stack.key(Scope.GENERATE))
    bodies = []
    for _ in range(3):
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(prompt="explicit porn of a naked woman", user="repeat-1")
        bodies.append(caught.value.body)
    assert bodies[0]["waakhond"]["warning"] is None
    assert "warning" in bodies[1]["waakhond"]["warning"]
    assert "throttled" in bodies[2]["waakhond"]["warning"]
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(prompt="a teapot", user="repeat-1")
    assert caught.value.body["code"] == "user_throttled"
    # Another user of the same platform is not affected.
    assert client.images.generate(prompt="a teapot", user="someone-else", size="256x256").data


# -- access --------------------------------------------------------------------------------


def test_keys_scopes_and_revocation(stack):
    with pytest.raises(openai.AuthenticationError):
        stack.client("wk_nope_nope").images.generate(prompt="a teapot")
    screen_only = stack.key(Scope.SCREEN)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        stack.client(screen_only).images.generate(prompt="a teapot")
    assert caught.value.body["code"] == "insufficient_scope"

    admin = stack.key(Scope.ADMIN)
    with stack.http(admin) as http:
        made = http.post("/v1/admin/keys", json={"name": "x", "scopes": ["generate"]}).json()
        assert http.delete(f"/v1/admin/keys/{made['id']}").status_code == 204
        listed = http.get("/v1/admin/keys").json()
    assert all("token" not in key and "secret" not in str(key) for key in listed)
    with pytest.raises(openai.AuthenticationError):
        stack.client(made["token"]).images.generate(prompt="a teapot")
    with stack.http() as anonymous:
        assert anonymous.get("/v1/admin/keys").status_code == 401


def test_a_key_is_rate_limited(stack):
    with stack.http(stack.key(Scope.SCREEN, per_minute=2)) as http:
        statuses = [http.post("/v1/screen/prompt", json={"prompt": "a teapot"}).status_code
                    for _ in range(3)]
    assert statuses == [200, 200, 429]


# -- screening endpoints, bad input, operations ------------------------------------------------


def test_screening_endpoints_answer_with_the_verdict(stack):
    with stack.http(stack.key(Scope.SCREEN)) as http:
        prompt = http.post("/v1/screen/prompt", json={"prompt": "maak haar naakt",
                                                      "country": "NL"}).json()
        image = http.post("/v1/screen/image", files={"file": ADULT_FACE.read_bytes()},
                          data={"context": "edit_input"}).json()
        matched = http.post("/v1/match", files={"file": ADULT_FACE.read_bytes()}).json()
    assert prompt["action"] != "allow" and prompt["verdict"]["country"] == "NL"
    assert image["action"] == "allow" and image["verdict"]["signals"]["faces"]["faces"]
    assert len(matched["hashes"]["pdq"]) == 64 and matched["matches"] == []


@pytest.mark.parametrize(("files", "code"), [
    ({"file": ("x.jpg", b"")}, "empty_input"),
    ({"file": ("x.txt", b"just some text, not an image")}, "unsupported_type"),
    ({"file": ("x.jpg", ADULT_FACE.read_bytes()[:5000])}, "corrupt_image"),
])
def test_bad_uploads_get_a_clear_error(stack, files, code):
    with stack.http(stack.key(Scope.SCREEN)) as http:
        answer = http.post("/v1/screen/image", files=files)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "a cat", "n": 0}, "n"),
    ({"prompt": "a cat", "size": "13x13"}, "size"),
    ({"prompt": "x" * 10_001}, "prompt"),
])
def test_malformed_generation_requests_are_refused(stack, body, param):
    with stack.http(stack.key(Scope.GENERATE)) as http:
        answer = http.post("/v1/images/generations", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_an_unknown_country_is_refused(stack, maker):
    with pytest.raises(openai.BadRequestError) as caught:
        maker.images.generate(prompt="a teapot", extra_headers={"X-Waakhond-Country": "XX"})
    assert caught.value.body["code"] == "unknown_country"


def test_an_oversized_body_is_refused_before_it_is_read(stack):
    limit = stack.gateway.screener.settings.intake.max_bytes
    host, port = stack.url.removeprefix("http://").split(":")
    head = (f"POST /v1/screen/image HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {stack.key(Scope.SCREEN)}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {limit * 2}\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode())  # the body never comes: the header is enough
        status_line = connection.recv(200).split(b"\r\n")[0]
    assert b" 413 " in status_line


def test_health_readiness_metrics_and_openapi(stack):
    with stack.http() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["ready"] is True
        metrics = http.get("/metrics").text
        spec = http.get("/openapi.json").json()
    assert "waakhond_decisions_total" in metrics and "waakhond_request_seconds" in metrics
    assert {"/v1/images/generations", "/v1/images/edits", "/v1/screen/prompt",
            "/v1/verify"} <= set(spec["paths"])


def test_admin_actions_are_in_the_audit_log(stack):
    with stack.http(stack.key(Scope.ADMIN)) as http:
        made = http.post("/v1/admin/keys", json={"name": "audited", "scopes": ["screen"]})
        assert http.patch("/v1/users/audited-user", json={"tier": "verified"}).status_code == 200
        entries = http.get("/v1/audit", params={"last": 5}).json()
        verified = http.get("/v1/audit/verify").json()
    actions = [(e["action"], e["subject"]) for e in entries]
    assert ("key.create", f"key:{made.json()['id']}") in actions
    assert ("user.update", "user:audited-user") in actions
    assert verified["ok"] and verified["entries"] >= 2
