"""Cases for reviewers: queue sizes with SLA alerts, claim the next case, release it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from waakhond.api.deps import requires
from waakhond.api.errors import ERROR_RESPONSES
from waakhond.cases.queues import QUEUES, Cases
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope

router = APIRouter(prefix="/v1/cases", tags=["cases"], responses=ERROR_RESPONSES)
Moderator = Annotated[Caller, Depends(requires(Scope.MODERATE))]


class CaseNotFound(WaakhondError):
    code = "not_found"
    status = 404


def cases(request: Request) -> Cases:
    return request.app.state.cases  # type: ignore[no-any-return]


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
        raise CaseNotFound("no open case waits in this queue")
    return case


@router.get("/{reference}")
def get_case(request: Request, reference: str, _: Moderator) -> dict[str, Any]:
    case = cases(request).get(reference)
    if case is None:
        raise CaseNotFound(f"no case {reference}")
    return case


@router.post("/{reference}/release")
def release(request: Request, reference: str, found: Moderator) -> dict[str, Any]:
    """Give a case you hold back to its queue."""
    if not cases(request).release(reference, reviewer(found)):
        raise CaseNotFound(f"you hold no case {reference}")
    return cases(request).get(reference) or {}
