"""For the people the abuse is about. The victim portal, like StopNCII but open: the person
picks images on their own device, the page hashes them there (static/hashing.js: PDQ, MD5,
SHA-256) and sends only the hashes to /v1/victims/submissions; they get a case number and PIN
to check or withdraw. And the face opt-out registry: a photo goes up once, is turned into
identity vectors and discarded; the person keeps a reference and secret to delete it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from waakhond.consent.registry import MAX_PHOTOS, RegistryError
from waakhond.errors import WaakhondError
from waakhond.victims import VictimLocked, VictimNotFound
from waakhond.web.pages import render, translator
from waakhond.web.public import too_many_page, within_form_limit

router = APIRouter(include_in_schema=False)
Short = Annotated[str, Form(max_length=200)]


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request) -> HTMLResponse:
    return render(request, "portal.html")


@router.get("/portal/case", response_class=HTMLResponse)
def case_form(request: Request) -> HTMLResponse:
    return render(request, "portal_case.html", found=None, errors=[])


@router.post("/portal/case", response_class=HTMLResponse)
def case(request: Request, reference: Short = "", pin: Short = "",
         withdraw: Short = "") -> HTMLResponse:
    if not within_form_limit(request):
        return too_many_page(request)
    t, victims = translator(request), request.app.state.victims
    try:
        found = (victims.withdraw if withdraw else victims.status)(reference.strip(),
                                                                   pin.strip())
    except VictimNotFound:
        return render(request, "portal_case.html", status=404, found=None,
                      errors=[t("portal.not_found")], reference=reference)
    except VictimLocked as exc:
        return render(request, "portal_case.html", status=429, found=None,
                      errors=[str(exc)], reference=reference)
    return render(request, "portal_case.html", found=found, errors=[], reference=reference,
                  pin=pin, withdrawn=bool(withdraw))


@router.get("/opt-out", response_class=HTMLResponse)
def opt_out_form(request: Request) -> HTMLResponse:
    return render(request, "optout.html", errors=[], enrolled=None, max_photos=MAX_PHOTOS)


@router.post("/opt-out", response_class=HTMLResponse)
async def opt_out(request: Request, photos: list[UploadFile], scope: Short = "no_sexual",
                  enrolled_by: Short = "self", consent: Short = "") -> HTMLResponse:
    t = translator(request)
    errors = [] if consent else [t("optout.error_consent")]
    if not errors and within_form_limit(request):
        # Read into memory only; the registry keeps vectors, never the photo.
        data = [await photo.read() for photo in photos if photo.filename]
        try:
            enrolled = request.app.state.registry.enrol(data, scope, enrolled_by)
        except (RegistryError, WaakhondError) as exc:
            return render(request, "optout.html", status=getattr(exc, "status", 400),
                          errors=[str(exc)], enrolled=None, max_photos=MAX_PHOTOS)
        return render(request, "optout.html", status=201, enrolled=enrolled, errors=[],
                      max_photos=MAX_PHOTOS)
    elif not errors:
        return too_many_page(request)
    return render(request, "optout.html", status=400, errors=errors, enrolled=None,
                  max_photos=MAX_PHOTOS)


@router.post("/opt-out/manage", response_class=HTMLResponse)
def manage(request: Request, reference: Short = "", secret: Short = "",
           delete: Short = "") -> HTMLResponse:
    if not within_form_limit(request):
        return too_many_page(request)
    registry, t = request.app.state.registry, translator(request)
    if delete:
        deleted = registry.delete(reference.strip(), secret.strip())
        found = {"reference": reference, "status": "deleted"} if deleted else None
    else:
        found = registry.status(reference.strip(), secret.strip())
    return render(request, "optout.html", status=200 if found else 404, enrolled=None,
                  managed=found, errors=[] if found else [t("optout.not_found")],
                  max_photos=MAX_PHOTOS)
