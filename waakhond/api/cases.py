"""Cases for reviewers: queue sizes with SLA alerts, claim the next case, release it, decide
it (a restriction in DSA terms, or no action), answer a complaint."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from waakhond.api.deps import requires
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.cases.complaints import ComplaintOutcome, Complaints
from waakhond.cases.decisions import DecisionError, DecisionInput, Decisions, Outcome, Restriction
from waakhond.cases.queues import QUEUES, Cases
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope
from waakhond.policy.dsa import (
    ACCOUNT,
    CATEGORIES,
    CONTENT_TYPES,
    KEYWORDS,
    MONETARY,
    PROVISION,
    TERRITORIES,
    VISIBILITY,
)

router = APIRouter(prefix="/v1/cases", tags=["cases"], responses=ERROR_RESPONSES)
Moderator = Annotated[Caller, Depends(requires(Scope.MODERATE))]



class InvalidDecision(WaakhondError):
    code = "invalid_decision"
    status = 409


def _choice(values: frozenset[str]) -> Any:
    return Literal[tuple(sorted(values))]  # type: ignore[valid-type]


class DecisionBody(BaseModel):
    """A restriction in the Transparency Database's terms, or no action. ``facts`` is read by
    the affected user and sent to the Commission: no names, e-mail addresses or links."""

    outcome: Outcome
    facts: str = Field("", max_length=5000)
    ground: Literal["illegal", "terms"] | None = None
    legal_ground: str = Field("", max_length=500)
    category: _choice(CATEGORIES) | None = None  # type: ignore[valid-type]
    keywords: list[_choice(KEYWORDS)] = []  # type: ignore[valid-type]
    visibility: list[_choice(VISIBILITY)] = []  # type: ignore[valid-type]
    account: _choice(ACCOUNT) | None = None  # type: ignore[valid-type]
    monetary: _choice(MONETARY) | None = None  # type: ignore[valid-type]
    provision: _choice(PROVISION) | None = None  # type: ignore[valid-type]
    territorial_scope: list[_choice(TERRITORIES)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: sorted(TERRITORIES))
    content_type: list[_choice(CONTENT_TYPES)] = ["CONTENT_TYPE_IMAGE"]  # type: ignore[valid-type]
    synthetic: bool = Field(False, description="AI-made or AI-edited content")
    end_user: str | None = Field(None, max_length=200,
                                 description="whose content it is, if the case does not say")
    hashes: dict[str, str] = Field(default_factory=dict, description=(
        "md5 / sha256 / pdq (and pdq_inside_border, of the picture inside a frame) of the "
        "content: identical copies are removed and blocked"))
    manifestly_unfounded: bool = Field(False, description=(
        "a declined notice was manifestly unfounded: counts against its notifier "
        "(warning, then notices not processed for 30 days; DSA Art. 23(2))"))

    def to_input(self) -> DecisionInput:
        return DecisionInput(
            outcome=self.outcome, facts=self.facts, ground=self.ground,
            legal_ground=self.legal_ground, category=self.category,
            keywords=tuple(self.keywords), restriction=Restriction(
                tuple(self.visibility), self.account, self.monetary, self.provision),
            territorial_scope=tuple(self.territorial_scope),
            content_type=tuple(self.content_type), synthetic=self.synthetic,
            end_user=self.end_user, hashes=self.hashes,
            manifestly_unfounded=self.manifestly_unfounded)


class AnswerBody(BaseModel):
    outcome: ComplaintOutcome
    answer: str = Field(min_length=1, max_length=5000,
                        description="the reasons, for the complainant")


def cases(request: Request) -> Cases:
    return request.app.state.cases  # type: ignore[no-any-return]


def decisions(request: Request) -> Decisions:
    return request.app.state.decisions  # type: ignore[no-any-return]


def reviewer(caller: Caller) -> str:
    return f"key:{caller.key_id} ({caller.name})"


@router.get("/queues")
def queues(request: Request, _: Moderator) -> list[dict[str, Any]]:
    """Per queue: open, assigned, overdue and due within 15 minutes."""
    return cases(request).overview()


@router.post("/claim")
def claim(request: Request, found: Moderator,
          queue: Annotated[str | None, Query(pattern=f"^({'|'.join(QUEUES)})$")] = None
          ) -> dict[str, Any]:
    """The most urgent open case, now assigned to you; nobody else gets it."""
    case = cases(request).claim_next(reviewer(found), queue)
    if case is None:
        raise NotFound("no open case waits in this queue")
    return case


@router.get("/{reference}")
def get_case(request: Request, reference: str, _: Moderator) -> dict[str, Any]:
    """The case and any decisions taken on it."""
    case = cases(request).get(reference)
    if case is None:
        raise NotFound(f"no case {reference}")
    return {**case, "decisions": decisions(request).for_case(reference)}


@router.post("/{reference}/decision")
def decide(request: Request, reference: str, body: DecisionBody,
           found: Moderator) -> dict[str, Any]:
    """Decide a case you hold. A restriction produces its statement of reasons, the webhook
    events that make the platform act and tell the user, and the notifier's answer."""
    try:
        decided = decisions(request).decide(reference, reviewer(found), body.to_input())
    except DecisionError as exc:
        raise InvalidDecision(str(exc)) from None
    return {**(decisions(request).get(decided.reference) or {}),
            "events": list(decided.events), "statements": list(decided.statements)}


@router.post("/{reference}/answer")
def answer(request: Request, reference: str, body: AnswerBody,
           found: Moderator) -> dict[str, Any]:
    """Answer a complaint case you hold (someone else took the decision complained about).
    Reversing restores the content through the webhook."""
    complaints: Complaints = request.app.state.complaints
    try:
        return complaints.decide(reference, reviewer(found), body.outcome, body.answer)
    except DecisionError as exc:
        raise InvalidDecision(str(exc)) from None


@router.post("/{reference}/release")
def release(request: Request, reference: str, found: Moderator) -> dict[str, Any]:
    """Give a case you hold back to its queue."""
    if not cases(request).release(reference, reviewer(found)):
        raise NotFound(f"you hold no case {reference}")
    return cases(request).get(reference) or {}
