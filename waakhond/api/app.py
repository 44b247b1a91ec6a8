"""The HTTP service: FastAPI app with the OpenAI-compatible image endpoints, screening,
administration, health, readiness and Prometheus metrics. OpenAPI spec at /openapi.json."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waakhond import __version__, web
from waakhond.api import (
    admin,
    cases,
    complaints,
    consent,
    crime_reports,
    images,
    notices,
    screening,
    transparency,
    victims,
)
from waakhond.api import webhooks as webhooks_api
from waakhond.api.errors import error_response, install_handlers
from waakhond.background import Periodic
from waakhond.cases.complaints import Complaints
from waakhond.cases.crime import CrimeReports
from waakhond.cases.decisions import Decisions
from waakhond.cases.notices import Notices
from waakhond.cases.queues import Cases
from waakhond.config import GatewaySettings, data_folder
from waakhond.consent.photos import photo_embedder
from waakhond.consent.registry import Registry
from waakhond.gateway.metrics import CASE_STATES, CASES, REQUEST_SECONDS
from waakhond.gateway.outputs import OutputStore
from waakhond.gateway.service import Gateway
from waakhond.hashing.banks import BankService
from waakhond.reports import CyberTiplineClient, ReportingPerson
from waakhond.store import Database
from waakhond.transparency.submitter import StatementSubmitter
from waakhond.victims import VictimPortal
from waakhond.webhooks import Webhooks

log = logging.getLogger(__name__)
# Room for multipart framing and form fields around the largest image intake accepts.
BODY_OVERHEAD = 1024 * 1024


def create_app(gateway: Gateway, settings: GatewaySettings) -> FastAPI:
    app = FastAPI(
        lifespan=_senders,
        title="waakhond",
        version=__version__,
        summary="A safety gateway in front of image generators: screens prompts, input "
                "photos and every output; marks what it lets through.",
    )
    app.state.gateway = gateway
    app.state.settings = settings
    app.state.notices = Notices(gateway.decisions.db)
    app.state.cases = Cases(gateway.decisions.db)
    app.state.decisions = Decisions(gateway.decisions.db)
    app.state.complaints = Complaints(gateway.decisions.db)
    app.state.victims = VictimPortal(gateway.decisions.db, BankService(gateway.decisions.db))
    matcher = gateway.screener.registry_matcher
    app.state.registry = Registry(gateway.decisions.db, photo_embedder(gateway.screener),
                                  on_change=matcher.refresh if matcher else None)
    app.state.crime_reports = CrimeReports(
        gateway.decisions.db, gateway.decisions, settings.report_csam_to_ncmec,
        _tipline(settings))
    app.state.outputs = OutputStore(data_folder() / "outputs", settings.output_retention_s)
    _add_deliveries(app, gateway.decisions.db, settings)
    install_handlers(app)
    for router in (images.router, screening.router, notices.router, cases.router,
                   complaints.router, consent.router, crime_reports.router,
                   transparency.router, victims.router,
                   webhooks_api.router, admin.router):
        app.include_router(router)
    _add_operations(app, gateway)
    _add_middleware(app, gateway)
    web.install(app)
    return app


def _add_deliveries(app: FastAPI, db: Database, settings: GatewaySettings) -> None:
    """The outboxes' senders, where their receivers are configured. Without one, events and
    statements wait in the database and go out once it is set."""
    app.state.webhooks = (Webhooks(db, settings.webhook_url, settings.webhook_secret,
                                   settings.webhook_timeout_s)
                          if settings.webhook_url else None)
    app.state.statements = (StatementSubmitter(db, settings.transparency_db_url,
                                               settings.transparency_db_token)
                            if settings.transparency_db_url else None)
    interval = settings.delivery_interval_s
    app.state.senders = (
        ([Periodic("webhooks", app.state.webhooks.deliver_due, interval)]
         if app.state.webhooks else [])
        + ([Periodic("statements", app.state.statements.submit_due, interval)]
           if app.state.statements else []))


def _tipline(settings: GatewaySettings) -> CyberTiplineClient | None:
    if not settings.cybertipline_url:
        return None
    return CyberTiplineClient(settings.cybertipline_url, settings.cybertipline_user,
                              settings.cybertipline_password,
                              reporter=ReportingPerson(settings.cybertipline_reporter_email))


@asynccontextmanager
async def _senders(app: FastAPI) -> AsyncIterator[None]:
    for sender in app.state.senders:
        sender.start()
    yield
    for sender in app.state.senders:
        sender.stop()
    if app.state.webhooks:
        app.state.webhooks.close()
    if app.state.crime_reports.tipline:
        app.state.crime_reports.tipline.close()


def _add_operations(app: FastAPI, gateway: Gateway) -> None:
    @app.get("/healthz", tags=["operations"])
    def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"],
             responses={503: {"description": "not ready: the problems are listed"}})
    def ready() -> JSONResponse:
        """The database answers and the models are loaded: safe to send traffic."""
        problems = []
        try:
            with gateway.decisions.db.session() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready, with the reason
            problems.append(f"database: {type(exc).__name__}")
        if not getattr(app.state, "models_loaded", False):
            problems.append("models are still loading")
        status = 200 if not problems else 503
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics: decisions by stage, action and label; request latency; cases
        by queue and state (open, assigned, overdue, due within 15 minutes)."""
        for queue in app.state.cases.overview():
            for state in CASE_STATES:
                CASES.labels(queue["queue"], state).set(queue[state])
        if app.state.webhooks:
            app.state.webhooks.update_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_middleware(app: FastAPI, gateway: Gateway) -> None:
    limit = gateway.screener.settings.intake.max_bytes + BODY_OVERHEAD
    app.add_middleware(_MeasuredAndBounded, limit=limit)


class _MeasuredAndBounded:
    """Refuses a body declared larger than the limit before reading it, and times every
    request per route. Plain ASGI: Starlette's BaseHTTPMiddleware (``@app.middleware``) cost
    about a tenth of the server's time per prompt screen (bench/gateway.py)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            refusal = error_response(413, f"the request body is {int(declared):,} bytes; the "
                                          f"limit is {self.limit:,}", "input_too_large")
            await refusal(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            route = scope.get("route")
            REQUEST_SECONDS.labels(getattr(route, "path", "unmatched"), str(status)).observe(
                time.perf_counter() - started)


def warm_up(app: FastAPI) -> None:
    """Load the models before traffic arrives (readiness says so until done)."""
    gateway: Gateway = app.state.gateway
    _ = gateway.screener.detectors, gateway.screener.prompt_detector
    gateway.screener.prompt_detector.warm_up()
    app.state.models_loaded = True
