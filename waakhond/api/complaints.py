"""Complaints against decisions (DSA Art. 20): free, electronic, open for six months, with
the decision's reference and the secret the complainant was given. No account needed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from waakhond.api.deps import limit_address
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.cases.complaints import Complaints
from waakhond.cases.decisions import DecisionError
from waakhond.errors import WaakhondError

# Enough for any person; a flood from one address is refused.
COMPLAINTS_PER_MINUTE = 20
router = APIRouter(prefix="/v1/complaints", tags=["complaints (DSA Art. 20)"],
                   responses=ERROR_RESPONSES)


class InvalidComplaint(WaakhondError):
    code = "invalid_complaint"



class ComplaintBody(BaseModel):
    decision: str = Field(min_length=1, max_length=40, description="the decision's reference")
    secret: str = Field(min_length=1, max_length=200, description=(
        "the complaint secret from the statement of reasons, or your notice's status secret"))
    explanation: str = Field(min_length=1, max_length=5000,
                             description="why the decision is wrong")


def complaints(request: Request) -> Complaints:
    return request.app.state.complaints  # type: ignore[no-any-return]


@router.post("", status_code=201)
def complain(request: Request, body: ComplaintBody) -> dict[str, Any]:
    """Complain about a decision. A person who did not take it will answer."""
    limit_address(request, "complaints", COMPLAINTS_PER_MINUTE)
    try:
        receipt = complaints(request).receive(body.decision, body.secret, body.explanation)
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except DecisionError as exc:
        raise InvalidComplaint(str(exc)) from None
    return {"reference": receipt.reference, "status_secret": receipt.status_secret,
            "as": receipt.complainant,
            "message": f"We received your complaint {receipt.reference}. A person will "
                       f"review the decision and answer; keep the secret to follow it."}


@router.get("/{reference}")
def complaint_status(request: Request, reference: str,
                     secret: Annotated[str, Header(alias="X-Complaint-Secret", min_length=1)]
                     ) -> dict[str, Any]:
    found = complaints(request).status(reference, secret)
    if found is None:
        raise NotFound("no complaint with this reference and secret")
    return found
