"""The numbers behind the moderator console's dashboard, for the last N UTC days.

Per day: the gateway's automated decisions by action and by label, and people's decisions by
outcome; now: the queues (open, assigned, overdue, due soon); for the period: the block rate
per jurisdiction. Counting by day and action is done in SQL, on a UTC day that is computed
the same way on SQLite and PostgreSQL (``UtcDay``). Labels are a JSON list, and unnesting JSON
is not portable, so they are counted in Python from (day, labels) rows of the period.
Every query is bounded to the period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from waakhond.cases.decisions import Outcome
from waakhond.cases.queues import Cases
from waakhond.core import Action
from waakhond.store import Database
from waakhond.store.models import DecisionRecord, ModerationDecision, aware

BLOCKING = (Action.BLOCK.value, Action.BLOCK_AND_REPORT.value)
UNKNOWN_COUNTRY = "unknown"
_YIELD_PER = 2000


class UtcDay(FunctionElement[date]):
    """The UTC calendar day of a timestamp column. SQLite keeps UTC times without a zone, so
    ``date()`` is right there; PostgreSQL's ``date(timestamptz)`` would use the session's
    time zone, so the time is moved to UTC first. 'UTC' is written into the SQL, not bound:
    PostgreSQL only matches a GROUP BY expression to the SELECT one when they are identical,
    and two bound parameters are not."""

    type = Date()
    inherit_cache = True
    name = "utc_day"


@compiles(UtcDay)
def _utc_day(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(UtcDay, "postgresql")
def _utc_day_postgresql(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@dataclass(frozen=True)
class BlockRate:
    """Decisions about requests from one jurisdiction in the period, and how many blocked."""

    country: str  # ISO 3166-1 alpha-2, or "unknown"
    total: int
    blocked: int  # block and block_and_report
    rate: float  # blocked / total


@dataclass(frozen=True)
class Dashboard:
    """Each per-day series is a list of counts aligned with ``days`` (oldest first)."""

    days: list[date]
    decisions_by_action: dict[str, list[int]]  # every Action, mildest first
    decisions_by_label: dict[str, list[int]]  # labels seen, most frequent first
    moderation_by_outcome: dict[str, list[int]]  # every Outcome
    queues: list[dict[str, Any]]  # Cases.overview()
    block_rates: list[BlockRate]  # most decisions first

    @property
    def day_labels(self) -> list[str]:
        """The days as ISO dates (x labels for the charts, first column of the tables)."""
        return [day.isoformat() for day in self.days]

    def per_day_header(self, series: dict[str, list[int]], first: str = "Day") -> list[str]:
        return [first, *series, "Total"]

    def per_day_rows(self, series: dict[str, list[int]]) -> list[list[str | int]]:
        """Table rows for a per-day series: the day, each count, the day's total."""
        return [[label, *counts, sum(counts)]
                for label, counts in zip(self.day_labels, _columns(series, len(self.days)),
                                         strict=True)]

    @property
    def block_rate_rows(self) -> list[list[str | int]]:
        return [[rate.country, rate.total, rate.blocked, f"{rate.rate:.1%}"]
                for rate in self.block_rates]


def dashboard(db: Database, days: int = 14, now: datetime | None = None) -> Dashboard:
    """The dashboard for the ``days`` UTC days up to and including today (``now``)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    now = aware(now) if now else datetime.now(UTC)
    period = period_days(now, days)
    start, end = _bounds(period)
    actions = _count_per_day(db, DecisionRecord.action, DecisionRecord.at, start, end, period)
    outcomes = _count_per_day(db, ModerationDecision.outcome, ModerationDecision.decided_at,
                              start, end, period)
    return Dashboard(
        days=period,
        decisions_by_action=_ordered(actions, [action.value for action in Action], period),
        decisions_by_label=_ordered(_labels_per_day(db, start, end, period), [], period),
        moderation_by_outcome=_ordered(outcomes, [outcome.value for outcome in Outcome],
                                       period),
        queues=Cases(db).overview(now),
        block_rates=_block_rates(db, start, end),
    )


def period_days(now: datetime, days: int) -> list[date]:
    """The last ``days`` UTC days, oldest first, ending with the day of ``now``."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


def _bounds(period: list[date]) -> tuple[datetime, datetime]:
    """From midnight UTC on the first day to midnight after the last (exclusive)."""
    return (datetime.combine(period[0], time(), UTC),
            datetime.combine(period[-1] + timedelta(days=1), time(), UTC))


def _day(value: date | str) -> date:
    # SQLite's date() is text; the Date result type converts it, this is only a safety net.
    return date.fromisoformat(value) if isinstance(value, str) else value


def _count_per_day(db: Database, key: Any, timestamp: Any, start: datetime, end: datetime,
                   period: list[date]) -> dict[str, list[int]]:
    day = UtcDay(timestamp)
    query = (select(day, key, func.count()).where(timestamp >= start, timestamp < end)
             .group_by(day, key))
    index = {day: position for position, day in enumerate(period)}
    series: dict[str, list[int]] = {}
    with db.session() as session:
        for when, name, number in session.execute(query):
            series.setdefault(name, [0] * len(period))[index[_day(when)]] += number
    return series


def _labels_per_day(db: Database, start: datetime, end: datetime,
                    period: list[date]) -> dict[str, list[int]]:
    """A decision with two labels counts for both; one without labels is not counted."""
    day = UtcDay(DecisionRecord.at)
    query = (select(day, DecisionRecord.labels)
             .where(DecisionRecord.at >= start, DecisionRecord.at < end)
             .execution_options(yield_per=_YIELD_PER))
    index = {day: position for position, day in enumerate(period)}
    series: dict[str, list[int]] = {}
    with db.session() as session:
        for when, labels in session.execute(query):
            for label in set(labels or ()):
                series.setdefault(label, [0] * len(period))[index[_day(when)]] += 1
    return series


def _ordered(series: dict[str, list[int]], known: list[str],
             period: list[date]) -> dict[str, list[int]]:
    """Known names first, in their own order and even when zero (so a chart's colours stay
    the same from one period to the next); then the rest, most frequent first."""
    ordered = {name: series.get(name, [0] * len(period)) for name in known}
    totals = Counter({name: sum(counts) for name, counts in series.items()
                      if name not in ordered})
    for name, _total in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
        ordered[name] = series[name]
    return ordered


def _block_rates(db: Database, start: datetime, end: datetime) -> list[BlockRate]:
    blocked: ColumnElement[int] = func.sum(
        case((DecisionRecord.action.in_(BLOCKING), 1), else_=0))
    query = (select(DecisionRecord.country, func.count(), blocked)
             .where(DecisionRecord.at >= start, DecisionRecord.at < end)
             .group_by(DecisionRecord.country))
    with db.session() as session:
        rates = [BlockRate(country or UNKNOWN_COUNTRY, total, int(stopped or 0),
                           int(stopped or 0) / total)
                 for country, total, stopped in session.execute(query)]
    return sorted(rates, key=lambda rate: (-rate.total, rate.country))


def _columns(series: dict[str, list[int]], length: int) -> Iterable[list[int]]:
    """The series turned on their side: per position, every series' count."""
    if not series:
        return [[] for _ in range(length)]
    return [list(counts) for counts in zip(*series.values(), strict=True)]
