"""Keys, end users, the decision log and preserved evidence, for the platform's staff."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool

from waakhond.api.deps import gateway, requires
from waakhond.api.errors import ERROR_RESPONSES
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope, Tier

router = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)


class NotFound(WaakhondError):
    code = "not_found"
    status = 404


class KeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1)
    requests_per_minute: int = Field(600, ge=1, le=1_000_000)


class UserBody(BaseModel):
    tier: Tier | None = None
    reinstate: StrictBool = Field(False, description="clear strikes, throttling and suspension")


@router.post("/admin/keys", status_code=201)
def create_key(request: Request, body: KeyBody,
               _: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> dict[str, Any]:
    """A new API key. The token is shown in this answer only."""
    key = gateway(request).keys.create(body.name, [s.value for s in body.scopes],
                                       body.requests_per_minute)
    return {"id": key.key_id, "name": key.name, "prefix": key.prefix, "scopes": key.scopes,
            "token": key.token}


@router.get("/admin/keys")
def list_keys(request: Request,
              _: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> list[dict[str, Any]]:
    return gateway(request).keys.list()


@router.delete("/admin/keys/{key_id}", status_code=204)
def revoke_key(request: Request, key_id: int,
               _: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> Response:
    if not gateway(request).keys.revoke(key_id):
        raise NotFound(f"no active key {key_id}")
    return Response(status_code=204)


@router.get("/users/{user}")
def get_user(request: Request, user: str,
             _: Annotated[Caller, Depends(requires(Scope.MODERATE))]) -> dict[str, Any]:
    """An end user's tier, strikes and suspension, as seen by this key's platform."""
    return gateway(request).users.describe(user)


@router.patch("/users/{user}")
def update_user(request: Request, user: str, body: UserBody,
                _: Annotated[Caller, Depends(requires(Scope.MODERATE))]) -> dict[str, Any]:
    """Set a user's tier (e.g. verified) or reinstate a throttled or suspended user."""
    return gateway(request).users.set(user, tier=body.tier.value if body.tier else None,
                                      reinstate=body.reinstate)


@router.get("/decisions/{reference}")
def decision(request: Request, reference: str,
             _: Annotated[Caller, Depends(requires(Scope.AUDIT))]) -> dict[str, Any]:
    """A decision from the log: action, labels, every reason, hashes if it was reported."""
    found = gateway(request).decisions.get(reference)
    if found is None:
        raise NotFound(f"no decision {reference}")
    return found
