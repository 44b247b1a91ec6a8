"""Keys, end users, the decision log and preserved evidence, for the platform's staff."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool

from waakhond.api.deps import gateway, requires
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope, Tier

router = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)



class KeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1)
    requests_per_minute: int = Field(600, ge=1, le=1_000_000)


class UserBody(BaseModel):
    tier: Tier | None = None
    reinstate: StrictBool = Field(False, description="clear strikes, throttling and suspension")


@router.post("/admin/keys", status_code=201)
def create_key(request: Request, body: KeyBody,
               found: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> dict[str, Any]:
    """A new API key. The token is shown in this answer only."""
    key = gateway(request).keys.create(body.name, [s.value for s in body.scopes],
                                       body.requests_per_minute)
    _audit(request, found, "key.create", f"key:{key.key_id}",
           {"name": key.name, "scopes": key.scopes})
    return {"id": key.key_id, "name": key.name, "prefix": key.prefix, "scopes": key.scopes,
            "token": key.token}


@router.get("/admin/keys")
def list_keys(request: Request,
              _: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> list[dict[str, Any]]:
    return gateway(request).keys.list()


@router.delete("/admin/keys/{key_id}", status_code=204)
def revoke_key(request: Request, key_id: int,
               found: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> Response:
    if not gateway(request).keys.revoke(key_id):
        raise NotFound(f"no active key {key_id}")
    _audit(request, found, "key.revoke", f"key:{key_id}", {})
    return Response(status_code=204)


@router.get("/users/{user}")
def get_user(request: Request, user: str,
             _: Annotated[Caller, Depends(requires(Scope.MODERATE))]) -> dict[str, Any]:
    """An end user's tier, strikes and suspension, as seen by this key's platform."""
    return gateway(request).users.describe(user)


@router.patch("/users/{user}")
def update_user(request: Request, user: str, body: UserBody,
                found: Annotated[Caller, Depends(requires(Scope.MODERATE))]) -> dict[str, Any]:
    """Set a user's tier (e.g. verified) or reinstate a throttled or suspended user."""
    changed = gateway(request).users.set(user, tier=body.tier.value if body.tier else None,
                                         reinstate=body.reinstate)
    _audit(request, found, "user.update", f"user:{user}", body.model_dump(mode="json"))
    return changed


@router.get("/audit")
def audit_entries(request: Request, _: Annotated[Caller, Depends(requires(Scope.AUDIT))],
                  last: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    """The newest entries of the hash-chained audit log."""
    unknown = sorted(set(request.query_params) - {"last"})
    if unknown:  # a misspelt parameter would silently give the default: say so instead
        raise _bad_request(f"unknown query parameters: {', '.join(unknown)}")
    return gateway(request).decisions.audit.entries(last)


@router.get("/audit/verify")
def audit_verify(request: Request,
                 _: Annotated[Caller, Depends(requires(Scope.AUDIT))]) -> dict[str, Any]:
    """Recompute the whole chain: ``ok`` false names the first edited or removed entry."""
    return asdict(gateway(request).decisions.audit.verify())


def _audit(request: Request, caller: Caller, action: str, subject: str,
           details: dict[str, Any]) -> None:
    gateway(request).decisions.audit.append(f"key:{caller.key_id} ({caller.name})", action,
                                            subject, details)


@router.get("/decisions/{reference}")
def decision(request: Request, reference: str,
             _: Annotated[Caller, Depends(requires(Scope.AUDIT))]) -> dict[str, Any]:
    """A decision from the log: action, labels, every reason, hashes if it was reported."""
    found = gateway(request).decisions.get(reference)
    if found is None:
        raise NotFound(f"no decision {reference}")
    return found


def _bad_request(message: str) -> WaakhondError:
    error = WaakhondError(message)
    error.code = "invalid_request"
    return error
