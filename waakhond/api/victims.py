"""The victim portal over the API: anyone may send the hashes of their intimate images (the
page computes them on the person's device; the images never leave it) and gets a case number
and a PIN to check or withdraw the submission. No account, no key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, Field

from waakhond.api.deps import limit_address
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.errors import WaakhondError
from waakhond.victims import (
    SubmittedHash,
    VictimLocked,
    VictimNotFound,
    VictimPortal,
    VictimPortalError,
)
from waakhond.victims.portal import MAX_HASHES

# Enough for a person, on a shared address too; a flood of submissions is refused.
SUBMISSIONS_PER_MINUTE = 10
# Checks and withdrawals cost an Argon2 hash each, and guess PINs: a few per address.
PIN_TRIES_PER_MINUTE = 30
router = APIRouter(prefix="/v1/victims", tags=["victim portal"], responses=ERROR_RESPONSES)


class InvalidSubmission(WaakhondError):
    code = "invalid_submission"


class CaseLocked(WaakhondError):
    """Too many wrong PINs: a limit on tries, so 429 like every other rate limit."""

    code = "case_locked"
    status = 429


class HashBody(BaseModel):
    kind: Literal["pdq", "md5", "sha256"]
    value: str = Field(pattern=r"^[0-9a-fA-F]{32}([0-9a-fA-F]{32})?$",
                       description="hex: 64 characters for pdq and sha256, 32 for md5")
    quality: int | None = Field(None, ge=0, le=100, description=(
        "PDQ's quality score from the same computation; below 50 the hash is refused"))


class SubmissionBody(BaseModel):
    hashes: list[HashBody] = Field(min_length=1, max_length=MAX_HASHES, description=(
        "the hashes of one or more images, computed on your own device"))


class SubmissionReceipt(BaseModel):
    reference: str
    pin: str
    count: int
    message: str


class HashState(BaseModel):
    kind: str
    value: str
    active: bool = Field(description="the hash still blocks matching images")


class SubmissionStatus(BaseModel):
    reference: str
    status: Literal["active", "withdrawn"]
    count: int
    created_at: str
    withdrawn_at: str | None
    hashes: list[HashState]


Reference = Annotated[str, Path(min_length=1, max_length=40,
                                description="the case number, e.g. NCII-ABCD-EFGH-JKLM")]
Pin = Annotated[str, Header(alias="X-Victim-PIN", min_length=1, max_length=40,
                            description="the 8-digit PIN from the receipt")]


def victims(request: Request) -> VictimPortal:
    return request.app.state.victims  # type: ignore[no-any-return]


@router.post("/submissions", status_code=201, response_model=SubmissionReceipt)
def submit(request: Request, body: SubmissionBody) -> SubmissionReceipt:
    """Ask for images to be blocked, by their hashes only. Keep the case number and the PIN:
    they are shown once and are the only way to check or withdraw the submission."""
    limit_address(request, "victims", SUBMISSIONS_PER_MINUTE)
    try:
        receipt = victims(request).submit(
            [SubmittedHash(h.kind, h.value, h.quality) for h in body.hashes])
    except VictimPortalError as exc:
        raise InvalidSubmission(str(exc)) from None
    return SubmissionReceipt(
        reference=receipt.reference, pin=receipt.pin, count=receipt.count,
        message=f"We received {receipt.count} hash(es): images that match are now blocked. "
                f"Keep your case number {receipt.reference} and PIN {receipt.pin} somewhere "
                f"safe; they are not shown again and we cannot recover them.")


@router.get("/submissions/{reference}", response_model=SubmissionStatus)
def submission_status(request: Request, reference: Reference, pin: Pin) -> SubmissionStatus:
    """A submission and, for each hash, whether it still blocks matching images."""
    limit_address(request, "victims-pin", PIN_TRIES_PER_MINUTE)
    return _opened(lambda: victims(request).status(reference, pin))


@router.post("/submissions/{reference}/withdraw", response_model=SubmissionStatus)
def withdraw(request: Request, reference: Reference, pin: Pin) -> SubmissionStatus:
    """Stop blocking: the hashes leave the bank within about a second. Withdrawing again
    changes nothing."""
    limit_address(request, "victims-pin", PIN_TRIES_PER_MINUTE)
    return _opened(lambda: victims(request).withdraw(reference, pin))


def _opened(work: Callable[[], dict[str, Any]]) -> SubmissionStatus:
    try:
        return SubmissionStatus.model_validate(work())
    except VictimNotFound:
        # One answer for an unknown case number and a wrong PIN: it tells neither apart.
        raise NotFound("no submission with this case number and PIN") from None
    except VictimLocked as exc:
        raise CaseLocked(f"Too many wrong PINs: this case number is locked until "
                         f"{exc.until:%Y-%m-%d %H:%M} UTC. Try again after that.") from None
