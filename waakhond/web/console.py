"""The moderator console: sign in, queues with their SLA clocks, take the next case, a case
page with every signal and reason and the kept content behind wellness defaults, decisions
that produce the DSA statement of reasons, and the dashboard.

Every POST carries the session's CSRF token (a form field, or the X-CSRF-Token header from
our script); the session cookie is HttpOnly and SameSite=Strict besides."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from waakhond.accounts import Accounts, LoginFailed, SessionInfo, Sessions
from waakhond.api.cases import AnswerBody, DecisionBody
from waakhond.api.deps import limit_address
from waakhond.audit import AuditLog
from waakhond.cases.decisions import DecisionError
from waakhond.cases.files import case_file
from waakhond.cases.queues import QUEUES
from waakhond.gateway.access import AccessDenied
from waakhond.policy.dsa import CATEGORIES, KEYWORDS, VISIBILITY
from waakhond.web import charts
from waakhond.web import dashboard as dashboard_data
from waakhond.web.pages import SECURITY_HEADERS, render, translator
from waakhond.web.previews import PreviewDenied, View, may_see, render_view

router = APIRouter(prefix="/console", include_in_schema=False)
SESSION_COOKIE = "wk_console"
LOGIN_COOKIE = "wk_login"  # CSRF for the login form itself, before there is a session
LOGINS_PER_MINUTE = 10


class SignInFirst(Exception):
    """Raised by ``signed_in``: the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class BadCsrf(Exception):
    pass


def _sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def signed_in(request: Request) -> SessionInfo:
    found = _sessions(request).resolve(request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise SignInFirst(request.url.path)
    return found


def checked(request: Request, csrf: Annotated[str, Form()] = "") -> SessionInfo:
    """A signed-in POST whose CSRF token matches the session's."""
    found = signed_in(request)
    if not found.csrf_ok(csrf or request.headers.get("x-csrf-token")):
        raise BadCsrf()
    return found


Session = Annotated[SessionInfo, Depends(signed_in)]
CheckedSession = Annotated[SessionInfo, Depends(checked)]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


def _page(request: Request, template: str, session: SessionInfo, status: int = 200,
          **context: Any) -> HTMLResponse:
    return render(request, template, status=status, account=session.account,
                  csrf=session.csrf_token, **context)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/console") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "console/login.html", login_csrf=token, next=_safe_next(next),
                      error=None)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        path="/console", secure=request.url.scheme == "https")
    return response


def _safe_next(path: str) -> str:
    """Only a console path: a login link must not send people elsewhere."""
    return path if path.startswith("/console") and "//" not in path else "/console"


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=80)] = "",
          password: Annotated[str, Form(max_length=200)] = "",
          login_csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/console"
          ) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, login_csrf):
        raise BadCsrf()
    try:
        limit_address(request, "login", LOGINS_PER_MINUTE)
        account = Accounts(request.app.state.gateway.decisions.db).authenticate(
            username, password)
    except (LoginFailed, AccessDenied):
        return render(request, "console/login.html", status=401, login_csrf=expected,
                      next=_safe_next(next), error="console.login_failed")
    response = _redirect(_safe_next(next))
    response.set_cookie(SESSION_COOKIE, _sessions(request).start(account), httponly=True,
                        samesite="strict", path="/", secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, _: CheckedSession) -> Response:
    _sessions(request).end(request.cookies.get(SESSION_COOKIE, ""))
    response = _redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def queues(request: Request, session: Session, empty: str = "") -> HTMLResponse:
    return _page(request, "console/queues.html", session,
                 queues=request.app.state.cases.overview(), empty=empty)


@router.post("/claim")
def claim(request: Request, session: CheckedSession,
          queue: Annotated[str, Form()] = "") -> Response:
    chosen = queue if queue in QUEUES else None
    case = request.app.state.cases.claim_next(session.account.reviewer, chosen)
    if case is None:
        return _redirect(f"/console?empty={quote(queue or 'all')}")
    return _redirect(f"/console/cases/{case['reference']}")


@router.get("/cases/{reference}", response_class=HTMLResponse)
def case_page(request: Request, reference: str, session: Session,
              done: str = "") -> HTMLResponse:
    return _case(request, reference, session, done=done)


def _case(request: Request, reference: str, session: SessionInfo, done: str = "",
          errors: list[str] | None = None, status: int = 200) -> HTMLResponse:
    found = case_file(request.app.state.gateway.decisions.db, reference)
    if found is None:
        return _page(request, "console/missing.html", session, status=404, reference=reference)
    return _page(request, "console/case.html", session, status=status, case=found,
                 mine=found["assignee"] == session.account.reviewer and found["status"] ==
                 "assigned", may_see=may_see(session.account, found["queue"]), done=done,
                 errors=errors or [], categories=sorted(CATEGORIES),
                 keywords=sorted(KEYWORDS), visibility=sorted(VISIBILITY))


@router.post("/cases/{reference}/release")
def release(request: Request, reference: str, session: CheckedSession) -> Response:
    request.app.state.cases.release(reference, session.account.reviewer)
    return _redirect("/console")


@router.post("/cases/{reference}/decision", response_class=HTMLResponse)
async def decide(request: Request, reference: str, session: CheckedSession) -> Response:
    form = await request.form()
    fields: dict[str, Any] = {key: form.get(key) for key in (
        "outcome", "facts", "ground", "legal_ground", "category", "account")}
    fields = {key: value for key, value in fields.items() if value}
    fields |= {"keywords": form.getlist("keywords"), "visibility": form.getlist("visibility"),
               "synthetic": form.get("synthetic") == "yes",
               "manifestly_unfounded": form.get("manifestly_unfounded") == "yes"}
    try:
        decision = DecisionBody.model_validate(fields).to_input()
        decided = request.app.state.decisions.decide(reference, session.account.reviewer,
                                                     decision)
    except (ValidationError, DecisionError) as exc:
        return _refused(request, reference, session, exc)
    return _redirect(f"/console/cases/{reference}?done={quote(decided.reference)}")


@router.post("/cases/{reference}/answer", response_class=HTMLResponse)
def answer(request: Request, reference: str, session: CheckedSession,
           outcome: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "") -> Response:
    try:
        body = AnswerBody(outcome=outcome, answer=text)  # type: ignore[arg-type]
        request.app.state.complaints.decide(reference, session.account.reviewer,
                                            body.outcome, body.answer)
    except (ValidationError, DecisionError) as exc:
        return _refused(request, reference, session, exc)
    return _redirect(f"/console/cases/{reference}?done=answered")


def _refused(request: Request, reference: str, session: SessionInfo,
             exc: ValidationError | DecisionError) -> HTMLResponse:
    """The case page again, with what was wrong (the form's fields, or the DSA's rules)."""
    errors = ([f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()]
              if isinstance(exc, ValidationError) else [str(exc)])
    return _case(request, reference, session, errors=errors, status=400)


def _item(request: Request, reference: str, item: int, session: SessionInfo) -> str:
    """The case's queue, after checking the item belongs to the case and the person may see
    it; raises PreviewDenied otherwise."""
    found = case_file(request.app.state.gateway.decisions.db, reference)
    if found is None or item not in {entry["id"] for entry in found["content_items"]}:
        raise PreviewDenied()
    if not may_see(session.account, found["queue"]):
        raise PreviewDenied()
    return str(found["queue"])


@router.get("/cases/{reference}/preview/{item}")
def preview(request: Request, reference: str, item: int, session: Session) -> Response:
    """The blurred grayscale thumbnail the case page starts with."""
    _item(request, reference, item, session)
    kept = request.app.state.gateway.decisions.open_evidence(
        item, session.account.reviewer, f"blurred preview in case {reference}")
    if not kept.mime_type.startswith("image/"):
        raise PreviewDenied()  # text is never previewed, only revealed
    return Response(render_view(kept.data, View.BLURRED), media_type="image/jpeg",
                    headers=SECURITY_HEADERS)


@router.post("/cases/{reference}/reveal/{item}")
def reveal(request: Request, reference: str, item: int, session: CheckedSession,
           view: Annotated[View, Form()] = View.GRAYSCALE) -> Response:
    """A deliberate reveal: logged, then the picture (grayscale unless colour is asked)."""
    queue = _item(request, reference, item, session)
    AuditLog(request.app.state.gateway.decisions.db).append(
        session.account.reviewer, "preview.reveal", f"case:{reference}",
        {"item": item, "view": view.value, "queue": queue})
    kept = request.app.state.gateway.decisions.open_evidence(
        item, session.account.reviewer, f"{view.value} reveal in case {reference}")
    if not kept.mime_type.startswith("image/"):  # a prompt: its text, shown as text
        return Response(kept.data, media_type="text/plain; charset=utf-8",
                        headers=SECURITY_HEADERS)
    return Response(render_view(kept.data, view), media_type="image/jpeg",
                    headers=SECURITY_HEADERS)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: Session, days: int = 14) -> HTMLResponse:
    days = min(max(days, 1), 90)
    data = dashboard_data.dashboard(request.app.state.gateway.decisions.db, days)
    t = translator(request)
    queue_rows = [[t(f"queue.{queue['queue']}"), queue["open"], queue["assigned"],
                   queue["due_soon"], queue["overdue"], queue["sla_hours"]]
                  for queue in data.queues]
    return _page(request, "console/dashboard.html", session, data=data, days=days,
                  charts=charts, queue_rows=queue_rows,
                  block_rates=[(rate.country, rate.rate) for rate in data.block_rates])
