"""The web pages: the moderator console, the public notice forms and the victim portal,
served by the same app as the API (``install``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from waakhond.accounts import Sessions
from waakhond.web import console, portal, public
from waakhond.web.pages import SECURITY_HEADERS, render, translator
from waakhond.web.previews import PreviewDenied

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.state.console_sessions = Sessions(app.state.gateway.decisions.db)
    for router in (public.router, portal.router, console.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(console.SignInFirst)
    def sign_in_first(request: Request, exc: console.SignInFirst) -> RedirectResponse:
        return RedirectResponse(f"/console/login?next={exc.next_path}", status_code=303,
                                headers=SECURITY_HEADERS)

    @app.exception_handler(console.BadCsrf)
    def bad_csrf(request: Request, exc: console.BadCsrf) -> HTMLResponse:
        t = translator(request)
        return render(request, "message.html", status=403, title=t("error.csrf"),
                      text=t("error.csrf_text"))

    @app.exception_handler(PreviewDenied)
    def denied(request: Request, exc: PreviewDenied) -> HTMLResponse:
        t = translator(request)
        return render(request, "message.html", status=403, title=t("error.denied"),
                      text=t("error.denied_text"))
