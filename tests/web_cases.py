"""Cases for the console's tests, seeded as the gateway records them: a review verdict on a
harmless face photo (shared/data/faces), given at the signal level (labels), with the photo
kept encrypted for the reviewer. Never any sexual content."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from fastapi import FastAPI

from waakhond.accounts import Accounts
from waakhond.api.app import create_app
from waakhond.config import GatewaySettings
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.gateway.records import ContentToPreserve, DecisionLog, Requester, Stage
from waakhond.gateway.service import Gateway
from waakhond.gateway.setup import build_gateway
from waakhond.screening import Screener, ScreeningSettings
from waakhond.store import Database

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "deepface"
PASSWORD = "a long test password"


def seed_case(decisions: DecisionLog, labels: list[str], photo: str,
              prompt: str | None = None) -> str:
    """Records the verdict (a case opens); returns the gateway decision's reference."""
    reason = Reason("test.review", Action.REVIEW, "a person should look at this", {})
    verdict = Verdict(Action.REVIEW, labels, [reason], None, "t", ["base"], Context.UPLOAD,
                      "NL", signals={"faces": {"count": 1}})
    content = [ContentToPreserve((FACES / photo).read_bytes(), "image/jpeg")]
    if prompt is not None:
        content.insert(0, ContentToPreserve(prompt.encode(), "text/plain; charset=utf-8"))
    return decisions.record(verdict, Stage.IMAGE, "req_test", Requester(None, "u1", "NL"),
                            content)


def console_app(folder: Path, accounts: dict[str, list[str]]) -> tuple[FastAPI, Gateway]:
    """The app without models (nothing here screens), with an evidence key so content is
    kept for review, and the console accounts asked for (name -> roles). Set WAAKHOND_DATA
    to ``folder`` first."""
    settings = GatewaySettings(evidence_key=Fernet.generate_key().decode())
    gateway = build_gateway(settings, db=Database(f"sqlite:///{folder / 'w.db'}"),
                            screener=Screener(ScreeningSettings(), detectors=[]))
    for name, roles in accounts.items():
        Accounts(gateway.decisions.db).create(name, PASSWORD, roles)
    return create_app(gateway, settings), gateway
