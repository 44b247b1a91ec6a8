"""Reports of suspected crimes (DSA Art. 18): build one from a decided case, download it for
the authority, or file it with NCMEC's CyberTipline. Staff only (``moderate``); every step is
in the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from waakhond.api.cases import InvalidDecision, reviewer
from waakhond.api.deps import requires
from waakhond.api.errors import ERROR_RESPONSES, NotFound
from waakhond.cases.crime import CrimeReports, ReportRequest
from waakhond.cases.decisions import DecisionError
from waakhond.gateway.access import Caller, Scope

router = APIRouter(tags=["crime reports (DSA Art. 18)"], responses=ERROR_RESPONSES)
Moderator = Annotated[Caller, Depends(requires(Scope.MODERATE))]


class ReportBody(BaseModel):
    why_suspected: str = Field(min_length=1, max_length=5000,
                               description="why this suggests a crime, for the authority")
    timezone: str = Field("UTC", max_length=64, description="IANA name, e.g. Europe/Amsterdam")
    country: str | None = Field(None, pattern="^[A-Z]{2}$",
                                description="the state concerned, if the case does not say")
    ip_address: str | None = Field(None, max_length=45)
    account_url: str | None = Field(None, max_length=2000)
    viewed_by_reviewer: bool = False


def reports(request: Request) -> CrimeReports:
    return request.app.state.crime_reports  # type: ignore[no-any-return]


@router.post("/v1/cases/{reference}/crime-report", status_code=201)
def build(request: Request, reference: str, body: ReportBody,
          found: Moderator) -> dict[str, Any]:
    """Build the report package from a decided case; the destination follows the country
    (Europol when unknown; NCMEC for child sexual abuse with a US nexus)."""
    try:
        return reports(request).build(reference, reviewer(found),
                                      ReportRequest(**body.model_dump()))
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except DecisionError as exc:
        raise InvalidDecision(str(exc)) from None


@router.get("/v1/crime-reports/{reference}")
def get_report(request: Request, reference: str, _: Moderator) -> dict[str, Any]:
    found = reports(request).get(reference)
    if found is None:
        raise NotFound(f"no report {reference}")
    return found


@router.get("/v1/crime-reports/{reference}/export", response_class=Response)
def export_report(request: Request, reference: str, found: Moderator) -> Response:
    """The package as JSON, to send through the authority's own channel."""
    try:
        data = reports(request).export(reference, reviewer(found))
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    return Response(data, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{reference}.json"'})


@router.post("/v1/crime-reports/{reference}/submit")
def submit_report(request: Request, reference: str, found: Moderator) -> dict[str, Any]:
    """File the report with the CyberTipline, with its preserved files."""
    try:
        return reports(request).submit(reference, reviewer(found))
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except DecisionError as exc:
        raise InvalidDecision(str(exc)) from None
