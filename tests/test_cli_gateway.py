"""``waakhond serve``, ``key``, ``verify`` and ``evidence`` as a user runs them."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from PIL import Image

from tests.gateway_server import free_port
from waakhond.cli import main
from waakhond.config import GatewaySettings
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.gateway.records import (
    ContentToPreserve,
    DecisionLog,
    Generation,
    GenerationLog,
    Requester,
    Stage,
)
from waakhond.intake import decode_image
from waakhond.provenance.marker import Marker
from waakhond.store import Database

FACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "deepface" \
    / "img1.jpg"


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    monkeypatch.delenv("WAAKHOND_DATABASE_URL", raising=False)
    return tmp_path


def test_keys_are_created_listed_and_revoked(data, capsys):
    assert main(["key", "create", "my-app", "--scope", "generate", "--scope", "screen"]) == 0
    token = capsys.readouterr().out.split(": ")[-1].strip()
    assert token.startswith("wk_")
    assert main(["key", "list"]) == 0
    listing = capsys.readouterr().out
    assert "my-app" in listing and token not in listing and "active" in listing
    assert main(["key", "revoke", "1"]) == 0
    assert main(["key", "revoke", "1"]) == 2
    assert main(["key", "create", "x", "--scope", "everything"]) == 2


def _marked_png(data: Path) -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 160, 90)).save(picture, "PNG")
    marker = Marker.from_settings(GatewaySettings(), data)
    marked = marker.mark(decode_image(picture.getvalue()), edit=False, record_id="gen_cli",
                         mark_id=4242, model="test-model")
    GenerationLog(Database()).add(Generation("gen_cli", 4242, "req_cli", "generation",
                                             "test-model", "0" * 64, None, None))
    return marked.data


def test_verify_names_the_generation_record(data, capsys):
    marked = data / "marked.png"
    marked.write_bytes(_marked_png(data))
    assert main(["verify", str(marked)]) == 0
    out = capsys.readouterr().out
    assert "AI-GENERATED" in out and "gen_cli" in out and "Trusted" in out

    assert main(["verify", str(FACE)]) == 1
    assert "no marks found" in capsys.readouterr().out
    assert main(["verify", str(data / "missing.png")]) == 2


def test_opening_evidence_is_logged(data, monkeypatch, capsys):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("WAAKHOND_EVIDENCE_KEY", key)
    log = DecisionLog(Database(), key)
    reason = Reason("test.reported", Action.BLOCK_AND_REPORT, "reported in a test", {})
    verdict = Verdict(Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR"], [reason], None, "t", ["base"],
                      Context.UPLOAD, None)
    reference = log.record(verdict, Stage.IMAGE, "req_1", Requester(None, None, None),
                           [ContentToPreserve(b"harmless bytes", "image/png")])
    (item,) = log.get(reference)["evidence_items"]
    out = data / "evidence.bin"
    assert main(["evidence", str(item), "--by", "officer 7", "--purpose", "case 12",
                 "--out", str(out)]) == 0
    assert out.read_bytes() == b"harmless bytes"
    assert log.evidence_accesses(item)[0]["by"] == "officer 7"
    assert main(["evidence", "999", "--by", "x", "--purpose", "y", "--out", str(out)]) == 2


@pytest.mark.models
def test_serve_starts_the_gateway_with_an_admin_key(data):
    port = free_port()
    env = {**os.environ, "WAAKHOND_DATA": str(data)}
    server = subprocess.Popen([sys.executable, "-m", "waakhond.cli", "serve", "--port",
                               str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        assert ready
        token = (data / "admin-key.txt").read_text().strip()
        assert oct((data / "admin-key.txt").stat().st_mode)[-3:] == "600"
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/images/generations",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"prompt": "a kite over a beach", "size": "256x256"},
                            timeout=60)
        assert answer.status_code == 200 and answer.json()["data"][0]["b64_json"]
        for made in ("console-admin.txt", "evidence-key.txt"):
            assert oct((data / made).stat().st_mode)[-3:] == "600"
        username, password = (data / "console-admin.txt").read_text().split()
        assert _console_login(f"http://127.0.0.1:{port}", username, password) == "/console"
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert token in server.stderr.read()  # shown once, on the first start


def _console_login(base: str, username: str, password: str) -> str:
    with httpx.Client(base_url=base) as browser:
        page = browser.get("/console/login").text
        login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        answer = browser.post("/console/login", data={"username": username, "password": password,
                                                      "login_csrf": login_csrf})
        return answer.headers.get("location", f"failed: {answer.status_code}")


def test_console_accounts_from_the_command_line(data, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["account", "create", "rita", "--role", "reviewer"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["account", "create", "sam", "--role", "reviewer"]) == 2
    assert "12 characters" in capsys.readouterr().err
    assert main(["account", "disable", "rita"]) == 0
    assert main(["account", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["username"], a["roles"], a["active"]) for a in listed] == [
        ("rita", ["reviewer"], False)]
    assert main(["account", "enable", "nobody"]) == 2


def _wait_ready(url: str, server: subprocess.Popen, seconds: float = 90) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def test_the_transparency_report_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    out = tmp_path / "report.csv"
    assert main(["transparency-report", "--start", "2026-01-01", "--end", "2027-01-01",
                 "--out", str(out)]) == 0
    assert out.read_text().startswith("section,quantity,breakdown,value")
    assert main(["transparency-report", "--start", "2026-01-01", "--end", "2026-01-01"]) == 2
