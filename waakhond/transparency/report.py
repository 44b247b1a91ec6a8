"""The DSA transparency report (Art. 15 and 24) for any period, as CSV.

The quantities follow the quantitative template of Commission Implementing Regulation (EU)
2024/2835 (Annex I), and the sections carry its names: Member State orders to act against
illegal content (1.2.1), notices under Art. 16 (1.3), own-initiative content moderation (1.4),
the internal complaint-handling system and Art. 23 suspensions (1.5), and automated means with
their indicators of accuracy (1.6). Every row is one number: a section, a quantity, a
breakdown (``all``, or the category, ground, measure... it counts) and its value; categories,
grounds and measures are the Transparency Database's keys, as in the statements of reasons.

The period is [start, end). Each event counts in the period it happened in: a notice when it
was received, a decision when it was taken, a complaint when it was received or decided, a
reversal when it was reversed. Counts are aggregated in the database (GROUP BY); a median or a
share of nothing is left empty rather than reported as 0. The report holds no personal data:
no notifier, flagger or authority names, no e-mail addresses, user ids or content locations.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from statistics import median
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, select
from sqlalchemy.orm import Session

from waakhond.cases.decisions import ACCOUNT_SUSPENDED, NOT_AUTOMATED, PARTLY_AUTOMATED, Outcome
from waakhond.cases.notices import NoticeKind
from waakhond.cases.queues import Source
from waakhond.hashing.exchange import Feedback
from waakhond.store import Database
from waakhond.store.models import (
    Case,
    Complaint,
    DecisionRecord,
    MatchFeedback,
    ModerationDecision,
    Notice,
    aware,
)

ORDERS = "Member State orders to act against illegal content"
NOTICES = "Notices submitted in accordance with Article 16"
OWN_INITIATIVE = "Own-initiative content moderation"
COMPLAINTS = "Internal complaint-handling system"
SUSPENSIONS = "Suspensions imposed under Article 23"
AUTOMATED_MEANS = "Use of automated means and indicators of accuracy"
HEADER = ("section", "quantity", "breakdown", "value")
ALL = "all"

Decision = ModerationDecision
# The Art. 23 rule's suspensions are rows of their own on the case that triggered them; they
# are counted as suspensions, not as a second action on that case's content.
_ART23 = and_(Decision.automated_decision == PARTLY_AUTOMATED,
              func.coalesce(Decision.account, "") == ACCOUNT_SUSPENDED)
_NOTICES = Notice.kind.in_((NoticeKind.ART16.value, NoticeKind.TAKE_IT_DOWN.value))
_ORDERS = Notice.kind == NoticeKind.AUTHORITY_ORDER.value
_AUTOMATED_DETECTIONS = Case.source == Source.DECISION.value
_RESTRICTED = Decision.outcome == Outcome.RESTRICT.value
# A reviewer's verdict on a hash-bank match; "pending" is a match nobody has looked at yet.
_REVIEWED_MATCH = (Feedback.CONFIRM.value, Feedback.DISPUTE.value)


class PeriodError(ValueError):
    """The period is empty or reversed."""


@dataclass(frozen=True)
class ReportRow:
    section: str
    quantity: str
    breakdown: str
    value: str | int | float


@dataclass(frozen=True)
class _Period:
    start: datetime
    end: datetime

    def holds(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


def report_for_days(db: Database, first: date, after_last: date) -> list[ReportRow]:
    """The report for whole UTC days: ``after_last`` is the day after the period's last."""
    return transparency_report(db, datetime.combine(first, time(), tzinfo=UTC),
                               datetime.combine(after_last, time(), tzinfo=UTC))


def transparency_report(db: Database, start: datetime, end: datetime) -> list[ReportRow]:
    """Every quantity for [start, end); naive times are taken as UTC."""
    # UTC on both sides: SQLite compares the stored UTC wall-clock times as text.
    period = _Period(aware(start).astimezone(UTC), aware(end).astimezone(UTC))
    if period.start >= period.end:
        raise PeriodError("the period must start before it ends")
    with db.session() as session:
        return [*_orders(session, period), *_notices(session, period),
                *_own_initiative(session, period), *_complaints(session, period),
                *_suspensions(session, period), *_automated_means(session, period)]


def to_csv(rows: Iterable[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((row.section, row.quantity, row.breakdown, row.value) for row in rows)
    return out.getvalue()


def _counts(section: str, quantity: str, groups: Iterable[tuple[str | None, int]],
            total: bool = True) -> list[ReportRow]:
    """One row per breakdown, after ``all`` when the breakdowns add up to a total (they do
    not where one item counts under several, like labels)."""
    counted: Counter[str] = Counter()
    for key, number in groups:
        counted[key or "none"] += number
    rows = [ReportRow(section, quantity, ALL, counted.total())] if total else []
    return rows + [ReportRow(section, quantity, key, number)
                   for key, number in sorted(counted.items())]


def _count(session: Session, section: str, quantity: str, query: Select[Any]) -> ReportRow:
    return ReportRow(section, quantity, ALL, session.scalar(query) or 0)


def _median_hours(section: str, quantity: str,
                  spans: Iterable[tuple[datetime, datetime]]) -> ReportRow:
    # In Python, from the selected times: SQLite has no median (PostgreSQL has
    # percentile_cont) and no common way to subtract times: SQL would differ per database.
    hours = [(aware(done) - aware(begun)).total_seconds() / 3600 for begun, done in spans]
    return ReportRow(section, quantity, ALL, round(median(hours), 2) if hours else "")


def _share(part: int, whole: int) -> float | str:
    return round(part / whole, 4) if whole else ""


def _decided(*columns: Any) -> Select[Any]:
    """People's decisions on content (not Art. 23 suspensions), with their case and the
    notice or gateway decision the case came from."""
    return (select(*columns).select_from(Decision)
            .join(Case, Case.reference == Decision.case_reference)
            .outerjoin(Notice, and_(Case.source == Source.NOTICE.value,
                                    Notice.reference == Case.source_reference))
            .outerjoin(DecisionRecord, and_(_AUTOMATED_DETECTIONS,
                                            DecisionRecord.reference == Case.source_reference))
            .where(~_ART23))


def _json_list(text: str | None) -> list[str]:
    return json.loads(text) if text else []


def _actions(session: Session, period: _Period, section: str,
             scope: ColumnElement[bool]) -> list[ReportRow]:
    """Restrictions decided in the period: by ground (the law or the terms and conditions),
    by category, and by type of measure (one decision can take several)."""
    visibility = cast(Decision.visibility, Text)  # JSON has no equality in PostgreSQL
    keys = (Decision.ground, Decision.category, visibility, Decision.account,
            Decision.monetary, Decision.provision)
    groups = session.execute(_decided(*keys, func.count())
                             .where(scope, _RESTRICTED, period.holds(Decision.decided_at))
                             .group_by(*keys)).all()
    by_measure: Counter[str] = Counter()
    for _, _, shown, account, monetary, provision, number in groups:
        for measure in (*_json_list(shown), account, monetary, provision):
            if measure:
                by_measure[measure] += number
    return [*_counts(section, "actions taken, by ground", ((g[0], g[-1]) for g in groups)),
            *_counts(section, "actions taken, by category", ((g[1], g[-1]) for g in groups)),
            *_counts(section, "actions taken, by type of measure", by_measure.items(),
                     total=False)]


def _by_outcome(session: Session, period: _Period, section: str, quantity: str,
                scope: ColumnElement[bool]) -> list[ReportRow]:
    return _counts(section, quantity, session.execute(
        _decided(Decision.outcome, func.count())
        .where(scope, period.holds(Decision.decided_at)).group_by(Decision.outcome)).all())


def _received(session: Session, period: _Period, column: Any,
              scope: ColumnElement[bool]) -> Iterable[tuple[str | None, int]]:
    return session.execute(select(column, func.count())
                           .where(scope, period.holds(Notice.received_at))
                           .group_by(column)).tuples()


def _orders(session: Session, period: _Period) -> list[ReportRow]:
    """Orders are counted by type of illegal content; receipt is acknowledged on intake, so
    the authority is informed of it at once."""
    acknowledged = select(Notice.received_at, Notice.acknowledged_at).where(
        _ORDERS, Notice.acknowledged_at.is_not(None), period.holds(Notice.received_at))
    given_effect = _decided(Notice.received_at, Decision.decided_at).where(
        _ORDERS, _RESTRICTED, period.holds(Decision.decided_at))
    return [*_counts(ORDERS, "orders received, by type of illegal content",
                     _received(session, period, Notice.category, _ORDERS)),
            _median_hours(ORDERS, "median hours to inform the authority of receipt",
                          session.execute(acknowledged).tuples()),
            _median_hours(ORDERS, "median hours to give effect to the order",
                          session.execute(given_effect).tuples())]


def _notices(session: Session, period: _Period) -> list[ReportRow]:
    trusted = select(func.count()).select_from(Notice).where(
        _NOTICES, Notice.trusted_flagger.is_not(None), period.holds(Notice.received_at))
    automated = _decided(func.count()).where(
        _NOTICES, Decision.automated_decision != NOT_AUTOMATED,
        period.holds(Decision.decided_at))
    spans = _decided(Notice.received_at, Decision.decided_at).where(
        _NOTICES, period.holds(Decision.decided_at))
    return [*_counts(NOTICES, "notices received, by type of alleged illegal content",
                     _received(session, period, Notice.category, _NOTICES)),
            *_counts(NOTICES, "notices received, by kind",
                     _received(session, period, Notice.kind, _NOTICES), total=False),
            _count(session, NOTICES, "notices submitted by trusted flaggers", trusted),
            *_by_outcome(session, period, NOTICES, "notices decided, by outcome", _NOTICES),
            *_actions(session, period, NOTICES, _NOTICES),
            _count(session, NOTICES, "notices processed by automated means", automated),
            _median_hours(NOTICES, "median hours from receipt to decision",
                          session.execute(spans).tuples())]


def _own_initiative(session: Session, period: _Period) -> list[ReportRow]:
    """The gateway's own decisions (every prompt and image it screened), and what people
    decided on the ones it passed to them."""
    labels = cast(DecisionRecord.labels, Text)
    groups = session.execute(
        select(DecisionRecord.stage, DecisionRecord.action, labels, func.count())
        .where(period.holds(DecisionRecord.at))
        .group_by(DecisionRecord.stage, DecisionRecord.action, labels)).all()
    by_label: Counter[str] = Counter()
    for _, action, names, number in groups:
        if action != "allow":
            by_label.update(dict.fromkeys(_json_list(names), number))
    return [*_counts(OWN_INITIATIVE, "automated decisions, by stage",
                     ((g[0], g[-1]) for g in groups)),
            *_counts(OWN_INITIATIVE, "automated decisions, by action",
                     ((g[1], g[-1]) for g in groups), total=False),
            *_counts(OWN_INITIATIVE, "automated restrictions, by label", by_label.items(),
                     total=False),
            *_by_outcome(session, period, OWN_INITIATIVE,
                         "automated detections decided by a person, by outcome",
                         _AUTOMATED_DETECTIONS),
            *_actions(session, period, OWN_INITIATIVE, _AUTOMATED_DETECTIONS)]


def _complaints(session: Session, period: _Period) -> list[ReportRow]:
    received = period.holds(Complaint.received_at)
    decided = period.holds(Complaint.decided_at)
    basis = session.execute(
        select(Decision.ground, Decision.outcome, func.count()).select_from(Complaint)
        .join(Decision, Decision.reference == Complaint.decision_reference).where(received)
        .group_by(Decision.ground, Decision.outcome)).all()
    reversed_ = select(func.count()).select_from(Decision).where(
        period.holds(Decision.reversed_at))
    return [*_counts(COMPLAINTS, "complaints received, by complainant", session.execute(
                select(Complaint.complainant, func.count()).where(received)
                .group_by(Complaint.complainant)).tuples()),
            # A complaint about "no action" has no ground: it counts under its outcome.
            *_counts(COMPLAINTS, "complaints received, by ground of the decision",
                     ((ground or outcome, number) for ground, outcome, number in basis)),
            *_counts(COMPLAINTS, "complaints decided, by outcome", session.execute(
                select(Complaint.outcome, func.count()).where(decided)
                .group_by(Complaint.outcome)).tuples()),
            _median_hours(COMPLAINTS, "median hours to decide a complaint", session.execute(
                select(Complaint.received_at, Complaint.decided_at).where(decided)).tuples()),
            _count(session, COMPLAINTS, "decisions reversed on complaint", reversed_)]


def _suspensions(session: Session, period: _Period) -> list[ReportRow]:
    """Accounts are suspended for manifestly illegal content (Art. 23(1)); notifiers'
    notices stop being processed after manifestly unfounded ones (Art. 23(2)), a state
    derived from those decisions, so their count is what is reported."""
    imposed = select(func.count()).select_from(Decision).where(
        _ART23, period.holds(Decision.decided_at))
    lifted = select(func.count()).select_from(Decision).where(
        _ART23, period.holds(Decision.reversed_at))
    unfounded = select(func.count()).select_from(Decision).where(
        Decision.manifestly_unfounded.is_(True), period.holds(Decision.decided_at))
    return [_count(session, SUSPENSIONS, "suspensions for manifestly illegal content",
                   imposed),
            _count(session, SUSPENSIONS, "suspensions lifted on complaint", lifted),
            _count(session, SUSPENSIONS, "notices declined as manifestly unfounded",
                   unfounded)]


def _automated_means(session: Session, period: _Period) -> list[ReportRow]:
    """Accuracy where there is a ground truth: the automated verdicts a person reviewed
    (``review`` and ``block_and_report``). A restriction confirms the verdict; no action
    overturns it. Plain blocks are not reviewed, so they have no such indicator."""
    reviewed = session.execute(
        _decided(DecisionRecord.action, Decision.outcome, func.count())
        .where(_AUTOMATED_DETECTIONS, period.holds(Decision.decided_at))
        .group_by(DecisionRecord.action, Decision.outcome)).all()
    automation = session.execute(
        select(Decision.automated_decision, func.count())
        .where(period.holds(Decision.decided_at)).group_by(Decision.automated_decision))
    reversed_ = _decided(func.count()).where(Decision.automated_detection.is_(True),
                                             period.holds(Decision.reversed_at))
    feedback = session.execute(
        select(MatchFeedback.feedback, func.count())
        .where(MatchFeedback.feedback.in_(_REVIEWED_MATCH), period.holds(MatchFeedback.at))
        .group_by(MatchFeedback.feedback))
    return [*_accuracy(reviewed),
            _count(session, AUTOMATED_MEANS,
                   "decisions on automated detections reversed on complaint", reversed_),
            *_counts(AUTOMATED_MEANS, "decisions, by use of automated means",
                     automation.tuples()),
            *_counts(AUTOMATED_MEANS, "hash-match reviews, by feedback", feedback.tuples())]


def _accuracy(reviewed: Iterable[Any]) -> list[ReportRow]:
    """Per automated action and for all: reviewed, confirmed, overturned, and the shares."""
    tallies: dict[str, Counter[str]] = {ALL: Counter()}
    for action, outcome, number in reviewed:
        for key in (ALL, action):
            tallies.setdefault(key, Counter())[outcome] += number
    rows = []
    for action, tally in sorted(tallies.items(), key=lambda item: (item[0] != ALL, item[0])):
        whole = tally.total()
        confirmed, overturned = tally[Outcome.RESTRICT.value], tally[Outcome.NO_ACTION.value]
        rows += [ReportRow(AUTOMATED_MEANS, quantity, action, value) for quantity, value in (
            ("automated verdicts reviewed by a person", whole),
            ("confirmed by the reviewer (restricted)", confirmed),
            ("overturned by the reviewer (no action)", overturned),
            ("share confirmed (precision indicator)", _share(confirmed, whole)),
            ("share overturned (error rate)", _share(overturned, whole)))]
    return rows
