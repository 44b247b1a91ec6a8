"""The opt-out face registry over HTTP. Anyone may enrol (their own face, or as a parent,
guardian, lawyer or a public figure's office); the reference and secret from the answer are
the only way to see, change or delete an enrolment. Nothing here says whether anyone else is
enrolled. Verification answers come from staff (``admin``)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from pydantic import BaseModel

from waakhond.api.deps import limit_address, requires
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.api.uploads import read_upload
from waakhond.consent.registry import EnrolledBy, Registry, RegistryError, Scope, Verification
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller
from waakhond.gateway.access import Scope as KeyScope

# Enrolment embeds every photo (about a tenth of a second each): a few a minute per address.
ENROLMENTS_PER_MINUTE = 5
router = APIRouter(prefix="/v1/consent", tags=["consent registry"], responses=ERROR_RESPONSES)
Secret = Annotated[str, Header(alias="X-Consent-Secret", min_length=1, max_length=200)]


class InvalidEnrolment(WaakhondError):
    code = "invalid_enrolment"


class ScopeBody(BaseModel):
    scope: Scope


class VerificationBody(BaseModel):
    verification: Verification


def registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


@router.post("/enrolments", status_code=201)
async def enrol(request: Request,
                photos: Annotated[list[UploadFile], File(
                    min_length=1, max_length=10,
                    description="1 to 10 photos, one face each; not kept")],
                scope: Annotated[Scope, Form()] = Scope.NO_SEXUAL,
                enrolled_by: Annotated[EnrolledBy, Form()] = EnrolledBy.SELF) -> dict[str, Any]:
    """Enrol a face. Only identity vectors are stored, never the photos. Keep the reference
    and secret: they are the only way to change or delete the enrolment."""
    limit_address(request, "enrol", ENROLMENTS_PER_MINUTE)
    data = [await read_upload(request, photo) for photo in photos]
    try:
        enrolled = await anyio.to_thread.run_sync(registry(request).enrol, data, scope,
                                                  enrolled_by)
    except RegistryError as exc:
        raise InvalidEnrolment(str(exc)) from None
    waiting = "" if enrolled.in_force == enrolled.scope else (
        f" Until it is verified, '{enrolled.in_force}' is in force.")
    return {"reference": enrolled.reference, "secret": enrolled.secret,
            "faces": enrolled.faces, "scope": enrolled.scope.value,
            "in_force": enrolled.in_force.value,
            "message": f"Enrolled. Images showing you are checked against it from now on."
                       f"{waiting} Keep the reference and secret."}


@router.get("/enrolments/{reference}")
def status(request: Request, reference: str, secret: Secret) -> dict[str, Any]:
    found = registry(request).status(reference, secret)
    if found is None:
        raise NotFound("no enrolment with this reference and secret")
    return found


@router.patch("/enrolments/{reference}")
def change(request: Request, reference: str, body: ScopeBody, secret: Secret) -> dict[str, Any]:
    found = registry(request).change_scope(reference, secret, body.scope)
    if found is None:
        raise NotFound("no enrolment with this reference and secret")
    return found


@router.delete("/enrolments/{reference}")
def delete(request: Request, reference: str, secret: Secret) -> dict[str, Any]:
    """Delete the enrolment: every stored vector is purged at once."""
    if not registry(request).delete(reference, secret):
        raise NotFound("no enrolment with this reference and secret")
    return {"reference": reference, "deleted": True}


@router.post("/enrolments/{reference}/verification")
def verify(request: Request, reference: str, body: VerificationBody,
           found_key: Annotated[Caller, Depends(requires(KeyScope.ADMIN))]) -> dict[str, Any]:
    """Record the identity check (the person, or their mandate): a verified enrolment's
    stricter scope comes into force."""
    found = registry(request).set_verification(reference, body.verification,
                                               f"key:{found_key.key_id} ({found_key.name})")
    if found is None:
        raise NotFound(f"no active enrolment {reference}")
    return found
