"""Public pages, no account needed: the Art. 16 notice form (anonymous only for child sexual
abuse), the TAKE IT DOWN request, the receipt, the status lookup, and the appeal (complaint)
form for a person whose content was restricted. They call the same case code as the API.

Secrets (a notice's status secret, a statement's complaint secret) travel in POST bodies,
never in URLs, so they stay out of access logs and browser history. The forms carry no CSRF
token: they need no session, so a forged post could do nothing the attacker could not do
directly; the anonymous rate limit per address applies instead."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from waakhond.api.deps import limit_address
from waakhond.cases.complaints import Complaints
from waakhond.cases.decisions import DecisionError
from waakhond.cases.notices import (
    CHILD_SAFETY,
    NoticeError,
    NoticeInput,
    NoticeKind,
    Notices,
)
from waakhond.gateway.access import AccessDenied
from waakhond.policy.dsa import CATEGORIES
from waakhond.web.i18n import Translator
from waakhond.web.pages import render, translator

router = APIRouter(include_in_schema=False)
# The same allowance per address as the notice API (waakhond.api.notices).
FORMS_PER_MINUTE = 20
# Most likely first; the rest alphabetically.
CATEGORY_ORDER = [CHILD_SAFETY, "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
                  "STATEMENT_CATEGORY_CYBER_VIOLENCE",
                  "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS"]
CATEGORY_ORDER += sorted(CATEGORIES - set(CATEGORY_ORDER))
# TAKE IT DOWN covers non-consensual intimate images: cyber violence in the DSA's terms.
TAKE_IT_DOWN_CATEGORY = "STATEMENT_CATEGORY_CYBER_VIOLENCE"
Text = Annotated[str, Form(max_length=5000)]
Short = Annotated[str, Form(max_length=320)]


def within_form_limit(request: Request) -> bool:
    try:
        limit_address(request, "address", FORMS_PER_MINUTE)
    except AccessDenied:
        return False
    return True


def too_many_page(request: Request) -> HTMLResponse:
    t = translator(request)
    return render(request, "message.html", status=429, title=t("error.busy"),
                  text=t("error.busy_text"))


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/report", response_class=HTMLResponse)
def report_form(request: Request) -> HTMLResponse:
    return render(request, "report.html", categories=CATEGORY_ORDER, form={}, errors=[],
                  child_safety=CHILD_SAFETY)


@router.post("/report", response_class=HTMLResponse)
def report(request: Request, category: Short = "", location: Text = "", explanation: Text = "",
           notifier_name: Short = "", notifier_email: Short = "", anonymous: Short = "",
           good_faith: Short = "") -> HTMLResponse:
    t = translator(request)
    form = {"category": category, "location": location, "explanation": explanation,
            "notifier_name": notifier_name, "notifier_email": notifier_email,
            "anonymous": bool(anonymous), "good_faith": bool(good_faith)}
    errors = _missing(t, form, contact=not anonymous)
    if anonymous and category != CHILD_SAFETY:
        errors.append(t("report.error_anonymous"))
    if anonymous:
        notifier_name = notifier_email = ""
    return _receive(request, "report.html", form, errors, NoticeInput(
        NoticeKind.ART16, category, location, explanation, bool(good_faith),
        notifier_name or None, notifier_email or None))


@router.get("/takedown", response_class=HTMLResponse)
def takedown_form(request: Request) -> HTMLResponse:
    return render(request, "takedown.html", form={}, errors=[])


@router.post("/takedown", response_class=HTMLResponse)
def takedown(request: Request, location: Text = "", explanation: Text = "",
             notifier_name: Short = "", notifier_email: Short = "",
             good_faith: Short = "") -> HTMLResponse:
    form = {"category": TAKE_IT_DOWN_CATEGORY, "location": location,
            "explanation": explanation, "notifier_name": notifier_name,
            "notifier_email": notifier_email, "good_faith": bool(good_faith)}
    errors = _missing(translator(request), form, contact=True)
    return _receive(request, "takedown.html", form, errors, NoticeInput(
        NoticeKind.TAKE_IT_DOWN, TAKE_IT_DOWN_CATEGORY, location, explanation,
        bool(good_faith), notifier_name or None, notifier_email or None))


def _missing(t: Translator, form: dict[str, object], contact: bool) -> list[str]:
    """The form's own checks, in the person's language, before the notice code's checks."""
    needed = ["category", "location", "explanation", "good_faith"]
    if contact:
        needed += ["notifier_name", "notifier_email"]
    return [t(f"error.missing_{name}") for name in needed
            if not form.get(name)]


def _receive(request: Request, template: str, form: dict[str, object], errors: list[str],
             notice: NoticeInput) -> HTMLResponse:
    notices: Notices = request.app.state.notices
    if not errors:
        if not within_form_limit(request):
            return too_many_page(request)
        try:
            receipt = notices.receive(notice)
        except NoticeError as exc:  # the notice code's own rule, e.g. a suspended notifier
            errors = [str(exc)]
        else:
            return render(request, "receipt.html", status=201, receipt=receipt,
                          take_it_down=notice.kind is NoticeKind.TAKE_IT_DOWN)
    return render(request, template, status=400, form=form, errors=errors,
                  categories=CATEGORY_ORDER, child_safety=CHILD_SAFETY)


@router.get("/status", response_class=HTMLResponse)
def status_form(request: Request) -> HTMLResponse:
    return render(request, "status.html", found=None, errors=[])


@router.post("/status", response_class=HTMLResponse)
def status(request: Request, reference: Short = "", secret: Short = "") -> HTMLResponse:
    if not within_form_limit(request):
        return too_many_page(request)
    notices: Notices = request.app.state.notices
    found = notices.status(reference.strip(), secret.strip()) if reference and secret else None
    errors = [] if found else [translator(request)("status.not_found")]
    return render(request, "status.html", status=200 if found else 404, found=found,
                  errors=errors, reference=reference)


@router.get("/appeal", response_class=HTMLResponse)
def appeal_form(request: Request) -> HTMLResponse:
    return render(request, "appeal.html", form={}, errors=[])


@router.post("/appeal", response_class=HTMLResponse)
def appeal(request: Request, decision: Short = "", secret: Short = "",
           explanation: Text = "") -> HTMLResponse:
    t = translator(request)
    form = {"decision": decision, "explanation": explanation}
    errors = [t(f"error.missing_{name}") for name, value in
              (("decision", decision), ("secret", secret), ("explanation", explanation))
              if not value.strip()]
    if not errors:
        if not within_form_limit(request):
            return too_many_page(request)
        complaints: Complaints = request.app.state.complaints
        try:
            receipt = complaints.receive(decision.strip(), secret.strip(), explanation)
        except LookupError:
            errors = [t("appeal.not_found")]
        except DecisionError as exc:
            errors = [str(exc)]
        else:
            return render(request, "appeal_receipt.html", status=201, receipt=receipt)
    return render(request, "appeal.html", status=400, form=form, errors=errors)
