"""The DSA transparency report (Art. 15 and 24) for a period, as CSV, for auditors."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from waakhond.api.deps import requires
from waakhond.api.errors import ERROR_RESPONSES
from waakhond.errors import WaakhondError
from waakhond.gateway.access import Caller, Scope
from waakhond.transparency.report import PeriodError, report_for_days, to_csv

router = APIRouter(prefix="/v1/transparency", tags=["transparency"], responses=ERROR_RESPONSES)
Auditor = Annotated[Caller, Depends(requires(Scope.AUDIT))]


class InvalidPeriod(WaakhondError):
    code = "invalid_period"
    status = 400


@router.get("/report", response_class=Response, responses={
    200: {"content": {"text/csv": {}},
          "description": "one quantity a line: section,quantity,breakdown,value"}})
def report(request: Request, _: Auditor,
           start: Annotated[date, Query(description="first day, YYYY-MM-DD (UTC)")],
           end: Annotated[date, Query(description="the day after the last, YYYY-MM-DD: "
                                                  "2025-01-01 to 2026-01-01 is the year 2025")],
           ) -> Response:
    """The quantities of the Commission's template (Implementing Regulation (EU) 2024/2835)
    for [start, end): orders, notices, own-initiative moderation, complaints, suspensions and
    the accuracy of automated means. No personal data."""
    try:
        rows = report_for_days(request.app.state.gateway.decisions.db, start, end)
    except PeriodError as exc:
        raise InvalidPeriod(f"{exc}: start {start} is not before end {end}") from None
    filename = f"transparency-report-{start}-{end}.csv"
    return Response(to_csv(rows), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
