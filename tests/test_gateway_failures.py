"""The gateway fails closed: detector faults, slow or broken generators and a spent time
budget all refuse the request; nothing unscreened is returned. A local fake upstream plays
the OpenAI-compatible generator; the real ``openai`` client is the caller.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import c2pa
import openai
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from tests.c2pa_fixture import sign_jpeg
from tests.gateway_server import serving
from tests.images import jpeg
from waakhond.api.app import create_app
from waakhond.config import GatewaySettings, ScreeningSettings
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.gateway.access import Scope
from waakhond.gateway.records import ContentToPreserve, DecisionLog, Requester, Stage
from waakhond.gateway.setup import build_gateway
from waakhond.gateway.upstream import OpenAIUpstream
from waakhond.screening import Screener
from waakhond.signals.hashes import HashDetector
from waakhond.signals.prompt import PromptIntentDetector
from waakhond.store import Database

pytestmark = pytest.mark.models


@dataclass
class FakeUpstream:
    """An OpenAI-compatible images server whose behaviour each test sets."""

    delay_s: float = 0.0
    status: int = 200
    garbage: bool = False
    signed: bool = False  # the generator marks its images with a C2PA manifest of its own
    requests: list[dict] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/images/generations")
        async def generations(request: Request) -> object:
            body = await request.json()
            self.requests.append(body)
            await asyncio.sleep(self.delay_s)
            if self.garbage:
                return {"unexpected": True}
            if self.status != 200:
                return JSONResponse({"error": {"message": "boom"}}, status_code=self.status)
            picture = _signed_picture() if self.signed else _picture()
            return {"created": 0, "data": [{"b64_json": picture} for _ in range(body["n"])]}

        return app


def _picture() -> str:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (90, 140, 200)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def _signed_picture() -> str:
    return base64.b64encode(sign_jpeg(jpeg(256, 256))).decode()


@dataclass
class BrokenDetector:
    """Stands in for a crashing model: the policy must block on its failure."""

    name: str = "nudity.regions"
    field: str = "nudity"
    version: str = "broken-1"

    def run(self, image: object, earlier: object) -> object:
        raise RuntimeError("model crashed")


@pytest.fixture(scope="module")
def prompt_detector() -> PromptIntentDetector:
    return PromptIntentDetector(2)


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream()
    with serving(upstream.app()) as url:
        yield upstream, url


@pytest.fixture
def gateway_for(tmp_path, monkeypatch, prompt_detector, db_url):
    """Start a gateway on a fresh database with the given upstream and image detectors."""
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    stack = []

    def start(upstream, detectors=None, **settings: object) -> openai.OpenAI:
        db = Database(db_url)
        screener = Screener(ScreeningSettings(model_threads=2), detectors=detectors,
                            prompt_detector=prompt_detector)
        gateway_settings = GatewaySettings(**settings)  # type: ignore[arg-type]
        app = create_app(build_gateway(gateway_settings, db=db, screener=screener,
                                       upstream=upstream), gateway_settings)
        context = serving(app)
        url = context.__enter__()
        stack.append(context)
        token = app.state.gateway.keys.create("t", [Scope.GENERATE.value]).token
        return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)

    yield start
    for context in stack:
        context.__exit__(None, None, None)


def test_a_fake_upstream_is_called_and_its_images_screened_and_marked(fake, gateway_for):
    upstream, url = fake
    upstream.__init__()
    client = gateway_for(OpenAIUpstream(f"{url}/v1", "upstream-key"),
                         detectors=[HashDetector()])
    response = client.images.generate(prompt="a blue square", n=2, size="256x256",
                                      model="some-model")
    assert len(response.data) == 2
    assert upstream.requests[-1]["model"] == "some-model"
    assert upstream.requests[-1]["response_format"] == "b64_json"
    marked = base64.b64decode(response.data[0].b64_json)
    assert marked != base64.b64decode(_picture())  # watermarked and signed


def test_the_generators_own_manifest_is_kept_as_an_ingredient(fake, gateway_for):
    upstream, url = fake
    upstream.__init__(signed=True)
    client = gateway_for(OpenAIUpstream(f"{url}/v1", None), detectors=[HashDetector()])
    response = client.images.generate(prompt="a blue square", size="256x256")
    marked = base64.b64decode(response.data[0].b64_json)
    with c2pa.Reader("image/jpeg", io.BytesIO(marked)) as reader:
        store = json.loads(reader.json())
    ours = store["manifests"][store["active_manifest"]]
    assert len(store["manifests"]) == 2
    assert [i["relationship"] for i in ours["ingredients"]] == ["componentOf"]


def test_a_detector_fault_blocks_the_output(fake, gateway_for):
    upstream, url = fake
    upstream.__init__()
    client = gateway_for(OpenAIUpstream(f"{url}/v1", None),
                         detectors=[HashDetector(), BrokenDetector()])
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a blue square", size="256x256", user="innocent")
    body = caught.value.body
    assert body["code"] == "content_policy_violation"
    assert "system.detector_failure" in body["waakhond"]["rules"]
    assert body["waakhond"]["warning"] is None  # our failure is no strike against the user


def test_a_prompt_detector_fault_blocks_before_generation(fake, gateway_for, monkeypatch,
                                                          prompt_detector):
    upstream, url = fake
    upstream.__init__()
    client = gateway_for(OpenAIUpstream(f"{url}/v1", None), detectors=[HashDetector()])

    def crash(*_: object, **__: object) -> object:
        raise RuntimeError("text model crashed")

    monkeypatch.setattr(prompt_detector, "run_text", crash)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="a blue square", size="256x256")
    assert upstream.requests == []  # nothing was generated


@pytest.mark.parametrize(("behaviour", "code"), [
    ({"delay_s": 3.0}, "upstream_error"),  # slower than the upstream time-out
    ({"status": 500}, "upstream_error"),
    ({"garbage": True}, "upstream_error"),
])
def test_a_failing_upstream_returns_nothing(fake, gateway_for, behaviour, code):
    upstream, url = fake
    upstream.__init__(**behaviour)
    client = gateway_for(OpenAIUpstream(f"{url}/v1", None, timeout_s=1.0),
                         detectors=[HashDetector()])
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(prompt="a blue square", size="256x256")
    assert caught.value.status_code == 502 and caught.value.body["code"] == code


def test_a_spent_time_budget_refuses_the_request(fake, gateway_for):
    upstream, url = fake
    upstream.__init__(delay_s=2.0)
    client = gateway_for(OpenAIUpstream(f"{url}/v1", None), detectors=[HashDetector()],
                         request_budget_s=30.0)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(prompt="a blue square", size="256x256",
                               extra_headers={"X-Waakhond-Budget-S": "0.5"})
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "screening_timeout"
    assert time.monotonic() - started < 1.9


# -- the decision log and preserved evidence -------------------------------------------------


def _reported_verdict() -> Verdict:
    """Signal level: a verdict as the policy gives it for reported content."""
    reason = Reason("test.reported", Action.BLOCK_AND_REPORT, "reported in a test", {})
    return Verdict(action=Action.BLOCK_AND_REPORT, labels=["SEXUAL_MINOR"], reasons=[reason],
                   dsa=None, policy_version="t", jurisdiction=["base"],
                   context=Context.UPLOAD, country=None,
                   signals={"hashes": {"md5": "0" * 32}})


def test_reported_content_is_kept_only_as_hashes_by_default(db_url):
    log = DecisionLog(Database(db_url))
    reference = log.record(_reported_verdict(), Stage.IMAGE, "req_1",
                           Requester(None, None, None),
                           [ContentToPreserve(b"harmless bytes", "image/png")])
    stored = log.get(reference)
    assert stored["hashes"] == {"md5": "0" * 32} and stored["evidence_items"] == []


def test_preserved_evidence_is_encrypted_and_every_access_logged(db_url):
    db = Database(db_url)
    log = DecisionLog(db, Fernet.generate_key().decode())
    reference = log.record(_reported_verdict(), Stage.IMAGE, "req_1",
                           Requester(None, None, None),
                           [ContentToPreserve(b"harmless bytes", "image/png")])
    (item,) = log.get(reference)["evidence_items"]
    with db.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT ciphertext FROM evidence").scalar_one()
    assert b"harmless bytes" not in raw
    with pytest.raises(ValueError, match="who"):
        log.open_evidence(item, "", "")
    opened = log.open_evidence(item, "officer 12", "police request 2026-118")
    assert opened.data == b"harmless bytes"
    assert [a["by"] for a in log.evidence_accesses(item)] == ["officer 12"]
    with pytest.raises(ValueError, match="key"):
        DecisionLog(db, Fernet.generate_key().decode()).open_evidence(item, "x", "y")
