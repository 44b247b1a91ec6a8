"""Notices over the API: anyone may send one (anonymously for child sexual abuse); trusted
flaggers send theirs with a ``flag`` key; staff record authority orders with a ``moderate``
key. The receipt comes only after the notice is stored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from waakhond.api.deps import limit_address, optional_caller, requires
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.cases.notices import (
    NoticeError,
    NoticeInput,
    NoticeKind,
    Notices,
    NotifierSuspended,
)
from waakhond.errors import WaakhondError
from waakhond.gateway.access import AccessDenied, Caller, Scope
from waakhond.policy.dsa import CATEGORIES

# Enough for a person or a hotline without a key; a flood from one address is refused.
ANONYMOUS_NOTICES_PER_MINUTE = 20
router = APIRouter(prefix="/v1/notices", tags=["notices (DSA Art. 16)"],
                   responses=ERROR_RESPONSES)


class InvalidNotice(WaakhondError):
    code = "invalid_notice"



Category = Literal[tuple(sorted(CATEGORIES))]  # type: ignore[valid-type]


class NoticeBody(BaseModel):
    kind: NoticeKind = NoticeKind.ART16
    category: Category = Field(description="a STATEMENT_CATEGORY_* key, e.g. "
                                           "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")
    location: str = Field(min_length=1, max_length=2000, description="URL or content id")
    explanation: str = Field(min_length=1, max_length=5000)
    good_faith: Literal[True] = Field(
        description="I believe in good faith that this is accurate and complete")
    notifier_name: str | None = Field(None, max_length=200)
    notifier_email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    authority: str | None = Field(None, max_length=200)


class NoticeReceipt(BaseModel):
    reference: str
    status_secret: str
    received_at: str
    deadline_at: str | None
    message: str
    warning: str | None = None


def notices(request: Request) -> Notices:
    return request.app.state.notices  # type: ignore[no-any-return]


# Anyone may send a notice; a key is optional (trusted flaggers, staff recording orders).
_OPTIONAL_KEY = {"security": [{}, {"HTTPBearer": []}]}


@router.post("", status_code=201, response_model=NoticeReceipt, openapi_extra=_OPTIONAL_KEY)
def send_notice(request: Request, body: NoticeBody,
                found: Annotated[Caller | None, Depends(optional_caller)]) -> NoticeReceipt:
    """Report illegal content. The answer confirms receipt; keep the reference and secret to
    follow the notice."""
    if body.kind is NoticeKind.AUTHORITY_ORDER:
        if found is None:
            raise AccessDenied("authority orders are recorded by staff with a key",
                               "invalid_api_key", 401)
        found.require(Scope.MODERATE)
    if found is None:  # keys have their own limit; anonymous senders one per address
        limit_address(request, "address", ANONYMOUS_NOTICES_PER_MINUTE)
    trusted = found.name if found and Scope.FLAG.value in found.scopes else None
    try:
        receipt = notices(request).receive(NoticeInput(**body.model_dump()), trusted)
    except NotifierSuspended as exc:
        raise AccessDenied(str(exc), "notifier_suspended", 403) from None
    except NoticeError as exc:
        raise InvalidNotice(str(exc)) from None
    clock = (f" It will be acted on within 48 hours, by {receipt.deadline_at.isoformat()}."
             if receipt.deadline_at else "")
    return NoticeReceipt(
        reference=receipt.reference, status_secret=receipt.status_secret,
        received_at=receipt.received_at.isoformat(),
        deadline_at=receipt.deadline_at.isoformat() if receipt.deadline_at else None,
        message=f"We received your notice {receipt.reference}.{clock} You will be told the "
                f"decision and how to contest it.", warning=receipt.warning)


@router.get("/{reference}")
def notice_status(request: Request, reference: str,
                  secret: Annotated[str, Header(alias="X-Notice-Secret", min_length=1)]
                  ) -> dict[str, Any]:
    """A notice's status, for its notifier (the secret from the receipt)."""
    found = notices(request).status(reference, secret)
    if found is None:
        raise NotFound("no notice with this reference and secret")
    return found


@router.get("")
def notice_queue(request: Request,
                 _: Annotated[Caller, Depends(requires(Scope.MODERATE))]) -> list[dict[str, Any]]:
    """Open notices, child safety first, then trusted flaggers and orders, then by deadline."""
    return notices(request).queue()

