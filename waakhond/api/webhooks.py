"""Webhook deliveries for operators: how many wait, were delivered or keep failing, each one
in detail, and a retry button for when the platform is back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from waakhond.api.deps import requires
from waakhond.api.errors import ERROR_RESPONSES, ErrorBody, NotFound
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope
from waakhond.webhooks import DeliveryStatus, Webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses={
    **ERROR_RESPONSES,
    409: {"model": ErrorBody, "description": "webhooks are not configured "
                                             "(WAAKHOND_WEBHOOK_URL), or already delivered"},
})
Admin = Annotated[Caller, Depends(requires(Scope.ADMIN))]



class WebhooksNotConfigured(WaakhondError):
    code = "webhooks_not_configured"
    status = 409


class AlreadyDelivered(WaakhondError):
    code = "already_delivered"
    status = 409


def webhooks(request: Request) -> Webhooks:
    found: Webhooks | None = getattr(request.app.state, "webhooks", None)
    if found is None:
        raise WebhooksNotConfigured("webhooks are off: set WAAKHOND_WEBHOOK_URL (and "
                                    "WAAKHOND_WEBHOOK_SECRET) to send actions to the platform")
    return found


def delivery(hooks: Webhooks, event_id: str) -> dict[str, Any]:
    found = hooks.get(event_id)
    if found is None:
        raise NotFound(f"no webhook event {event_id}")
    return found


@router.get("")
def overview(request: Request, _: Admin,
             status: Annotated[DeliveryStatus, Query()] = DeliveryStatus.FAILING,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Deliveries per status, and the newest ones in ``status`` (failing unless you ask)."""
    hooks = webhooks(request)
    return {"counts": hooks.overview(), "deliveries": hooks.list(status, limit)}


@router.get("/{event_id}")
def get_delivery(request: Request, event_id: str, _: Admin) -> dict[str, Any]:
    """One event: its data, status, attempts, last error and next attempt."""
    return delivery(webhooks(request), event_id)


@router.post("/{event_id}/retry")
def retry(request: Request, event_id: str, _: Admin) -> dict[str, Any]:
    """Send an undelivered event at the next delivery round (seconds), skipping its back-off."""
    hooks = webhooks(request)
    delivery(hooks, event_id)
    if not hooks.retry_now(event_id):
        raise AlreadyDelivered(f"webhook event {event_id} was delivered already")
    return delivery(hooks, event_id)
