"""Rendering: Jinja2 templates (autoescaped), the language, and the security headers every
page gets. Scripts and styles come only from our own /static files (a strict
Content-Security-Policy: no inline script, no third-party origin), and no page may be framed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from waakhond.web.i18n import COOKIE, LANGUAGES, Translator, choose_language

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True), trim_blocks=True,
                         lstrip_blocks=True)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # case and notice references stay out of other logs
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # nothing a moderator or a victim saw stays in a cache
}
ONE_YEAR = 365 * 24 * 3600


def translator(request: Request) -> Translator:
    return Translator(choose_language(request))


def render(request: Request, template: str, status: int = 200,
           **context: Any) -> HTMLResponse:
    t = translator(request)
    html = _TEMPLATES.get_template(template).render(
        t=t, lang=t.language, languages=LANGUAGES, path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(COOKIE, t.language, max_age=ONE_YEAR, samesite="lax")
    return response
