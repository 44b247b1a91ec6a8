"""What every route needs: the gateway, the caller's key and scope, the time budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from waakhond.api.errors import BudgetExceeded
from waakhond.config import GatewaySettings
from waakhond.gateway.access import AccessDenied, Caller, Scope
from waakhond.gateway.service import Gateway
from waakhond.gateway.service import Request as GatewayRequest

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="an API key: wk_<prefix>_<secret>")


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def settings(request: Request) -> GatewaySettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
           ) -> Caller:
    if credentials is None:
        raise AccessDenied("send an API key as 'Authorization: Bearer <key>'",
                           "invalid_api_key", 401)
    service = gateway(request)
    found = service.keys.authenticate(credentials.credentials)
    service.limiter.take(f"key:{found.key_id}", found.requests_per_minute)
    return found


def optional_caller(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Depends(_bearer)]) -> Caller | None:
    """For public endpoints that give a known key more (a trusted flagger's priority)."""
    return caller(request, credentials) if credentials is not None else None


def limit_address(request: Request, bucket: str, per_minute: int) -> None:
    """A per-minute allowance for callers without a key, one bucket per client address;
    raises AccessDenied (429) when it is spent."""
    address = request.client.host if request.client else "unknown"
    gateway(request).limiter.take(f"{bucket}:{address}", per_minute)


def requires(scope: Scope) -> Callable[..., Caller]:
    # async although it waits on nothing: FastAPI runs a plain function in a worker thread,
    # a hop per request for a set lookup.
    async def check(found: Annotated[Caller, Depends(caller)]) -> Caller:
        found.require(scope)
        return found

    return check


def gateway_request(found: Caller, end_user: str | None, country: str | None,
                    header_country: str | None) -> GatewayRequest:
    """The body's country wins over the header's; either may be absent."""
    return GatewayRequest(found, end_user or None, country or header_country or None)


CountryHeader = Annotated[str | None, Header(
    alias="X-Waakhond-Country", description="ISO 3166 country of the end user, e.g. NL")]
BudgetHeader = Annotated[float | None, Header(
    alias="X-Waakhond-Budget-S", gt=0,
    description="a shorter time budget for this request, in seconds")]


async def within_budget(request: Request, budget_header: float | None,
                        work: Callable[..., T], *args: Any) -> T:
    """Run blocking work in a thread; past the budget the request is refused. The thread may
    finish later, but its result is dropped: nothing unscreened is ever returned."""
    budget = settings(request).request_budget_s
    if budget_header is not None:
        budget = min(budget, budget_header)
    try:
        with anyio.fail_after(budget):
            return await anyio.to_thread.run_sync(lambda: work(*args),
                                                  abandon_on_cancel=True)
    except TimeoutError:
        raise BudgetExceeded(f"the request took longer than its {budget:g} s budget.") from None
