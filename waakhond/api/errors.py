"""Errors in the OpenAI format, so clients on the official SDK handle them as usual:

    {"error": {"message": ..., "type": ..., "param": null, "code": ..., "reference_id": ...}}

A block by the policy is ``content_policy_violation`` (HTTP 400) with the decision's reference
and a short reason; the full explanation is in the decision log for the platform's staff.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from waakhond.errors import InputError, WaakhondError
from waakhond.gateway.access import AccessDenied
from waakhond.gateway.service import Blocked, GatewayFailure

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str
    reference_id: str | None = None
    waakhond: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class NotFound(WaakhondError):
    """Whatever the route looks up is not there (or the secret does not open it)."""

    code = "not_found"
    status = 404


class BudgetExceeded(Exception):
    """The request ran past its time budget: refused, never passed through unscreened."""


# Declared on every route so the OpenAPI spec lists what a client can get back.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "bad request, or blocked by the policy (code content_policy_violation)",
        401: "missing or unknown API key",
        403: "the key lacks a scope, the user is suspended, or the tier forbids it",
        404: "no such decision, key, user, case or image",
        409: "not possible in this state: a case you do not hold, a decision taken already, "
             "webhooks not configured",
        413: "the request body is too large",
        429: "rate limit, or the user is throttled",
        502: "the image generator failed; nothing was returned",
        504: "the time budget ran out; nothing was returned (fail closed)",
    }.items()
}


def error_response(status: int, message: str, code: str, kind: str = "invalid_request_error",
                   param: str | None = None, reference: str | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    detail = ErrorDetail(message=message, type=kind, param=param, code=code,
                         reference_id=reference, waakhond=extra)
    return JSONResponse(ErrorBody(error=detail).model_dump(), status_code=status)


def blocked_response(exc: Blocked) -> JSONResponse:
    standing = exc.standing
    extra = {"action": exc.verdict.action.value, "labels": exc.verdict.labels,
             "request_id": exc.request_id,
             "rules": [reason.rule_id for reason in exc.verdict.reasons],
             "warning": standing.warning if standing else None}
    return error_response(400, f"Your request was rejected by the safety system: {exc.reason} "
                               f"(reference {exc.reference})",
                          "content_policy_violation", reference=exc.reference, extra=extra)


def _methods_for(request: Request) -> list[str]:
    """Every method of every route on this path: Starlette names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Blocked)
    async def _blocked(_: Request, exc: Blocked) -> JSONResponse:
        return blocked_response(exc)

    @app.exception_handler(AccessDenied)
    async def _denied(_: Request, exc: AccessDenied) -> JSONResponse:
        kind = "rate_limit_error" if exc.status == 429 else "authentication_error"
        return error_response(exc.status, str(exc), exc.code, kind=kind)

    @app.exception_handler(GatewayFailure)
    async def _failure(_: Request, exc: GatewayFailure) -> JSONResponse:
        return error_response(exc.status, f"Nothing was generated: {exc}", exc.code,
                              kind="server_error", extra={"request_id": exc.request_id})

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        return error_response(400, str(exc), exc.code)

    @app.exception_handler(WaakhondError)
    async def _waakhond(_: Request, exc: WaakhondError) -> JSONResponse:
        return error_response(getattr(exc, "status", 400), str(exc), exc.code)

    @app.exception_handler(BudgetExceeded)
    async def _budget(_: Request, exc: BudgetExceeded) -> JSONResponse:
        return error_response(504, f"Blocked: {exc} Nothing unscreened is returned.",
                              "screening_timeout", kind="server_error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid request')}"
        return error_response(400, message, "invalid_request",
                              param=location[-1] if location else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        answer = error_response(exc.status_code, str(exc.detail), f"http_{exc.status_code}")
        answer.headers.update(exc.headers or {})
        if exc.status_code == 405:
            answer.headers["Allow"] = ", ".join(_methods_for(request))
        return answer

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, "Blocked: an internal error stopped screening, so nothing "
                                   "was generated or let through (fail closed).",
                              "internal_error", kind="server_error")
