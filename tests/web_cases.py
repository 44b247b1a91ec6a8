"""Cases for the console's tests, seeded as the gateway records them: a review verdict on a
harmless face photo (shared/data/faces), given at the signal level (labels), with the photo
kept encrypted for the reviewer. Never any sexual content."""

from __future__ import annotations

from pathlib import Path

from waakhond.core import Action, Context, Reason, Verdict
from waakhond.gateway.records import ContentToPreserve, DecisionLog, Requester, Stage

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
