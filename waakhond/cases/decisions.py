"""A person's decision on a case, and everything that follows from it, as one change.

Deciding a case writes, in one transaction: the decision (in DSA Art. 17 terms: which
restrictions, on what ground, in which category, and the facts), the statement of reasons for
the Commission's Transparency Database, the webhook events that make the platform act (and
tell the affected user why and how to complain), the notice's outcome for its notifier, and a
strike on the user's account (Art. 23: a warning first, suspension after repeated manifestly
illegal content). Either all of it happens or none of it; the outboxes deliver it afterwards.

Only the reviewer holding a case can decide it, and a complaint against a decision is decided
by someone else (Art. 20(6): never solely automated, and not by the same person).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from waakhond.audit import AuditLog
from waakhond.cases.queues import Source
from waakhond.core import Action, Context, Verdict
from waakhond.gateway.access import EndUsers
from waakhond.hashing.banks import OWN_REMOVALS_BANK, BankError, BankKind, BankService, EntryInput
from waakhond.hashing.exchange import EntryStatus
from waakhond.hashing.signal_types import MIN_PDQ_QUALITY
from waakhond.policy.dsa import GROUNDS, TERRITORIES, synthetic_keywords, validate_dsa
from waakhond.store import Database
from waakhond.store.models import (
    Case,
    DecisionRecord,
    ModerationDecision,
    Notice,
    StatementOfReasons,
    iso,
)
from waakhond.transparency.statements import new_puid, statement_for
from waakhond.webhooks.delivery import enqueue

# Art. 20(1): complaints stay possible for at least six months after the decision notice.
COMPLAINT_WINDOW = timedelta(days=183)
NOT_AUTOMATED = "AUTOMATED_DECISION_NOT_AUTOMATED"
FULLY_AUTOMATED = "AUTOMATED_DECISION_FULLY"
# A suspension that follows from repeated decisions is decided by the rule, on people's
# decisions: partly automated.
PARTLY_AUTOMATED = "AUTOMATED_DECISION_PARTIALLY"
SYNTHETIC_MEDIA = "CONTENT_TYPE_SYNTHETIC_MEDIA"
ACCOUNT_SUSPENDED = "DECISION_ACCOUNT_SUSPENDED"
REMOVALS = frozenset({"DECISION_VISIBILITY_CONTENT_REMOVED",
                      "DECISION_VISIBILITY_CONTENT_DISABLED"})
# A decision's hashes by name -> the bank signal type each is kept as.
REMOVAL_SIGNALS = {"md5": "md5", "sha256": "sha256", "pdq": "pdq",
                   # the picture inside a solid border (a framed or letterboxed copy)
                   "pdq_inside_border": "pdq"}
# What the affected user and the notifier are told they can do (Art. 17(3)(f), 20, 21).
REDRESS = ("You can complain about this decision free of charge within six months "
           "(POST /v1/complaints with the decision reference and your secret; a person, not a "
           "machine, decides complaints). You can also turn to a certified out-of-court dispute "
           "settlement body (DSA Art. 21) or to a court.")


class Outcome(StrEnum):
    RESTRICT = "restrict"
    NO_ACTION = "no_action"  # the content stays: not illegal, not against the terms


class DecisionError(ValueError):
    """The decision cannot be taken as given; the message says why."""


@dataclass(frozen=True)
class Restriction:
    """What is done, in the Transparency Database's four kinds; at least one is set."""

    visibility: tuple[str, ...] = ()
    account: str | None = None
    monetary: str | None = None
    provision: str | None = None

    def any(self) -> bool:
        return bool(self.visibility or self.account or self.monetary or self.provision)


@dataclass(frozen=True)
class DecisionInput:
    outcome: Outcome
    facts: str  # for the affected user; no personal data (it goes to the Commission too)
    ground: str | None = None  # "illegal" or "terms"
    legal_ground: str = ""  # the law broken, with illegal content
    category: str | None = None
    keywords: tuple[str, ...] = ()
    restriction: Restriction = Restriction()
    territorial_scope: tuple[str, ...] = ()
    content_type: tuple[str, ...] = ("CONTENT_TYPE_IMAGE",)
    synthetic: bool = False  # AI-made or AI-edited
    end_user: str | None = None  # whose content it is, when the source does not say
    hashes: dict[str, str] = field(default_factory=dict)  # to remove identical copies
    # For a declined notice: it was manifestly unfounded (counts against the notifier).
    manifestly_unfounded: bool = False

    def check(self) -> None:
        if self.outcome is Outcome.NO_ACTION:
            return
        if self.manifestly_unfounded:
            raise DecisionError("only a notice declined with no_action can be manifestly "
                                "unfounded")
        if not self.restriction.any():
            raise DecisionError("a restriction needs at least one of visibility, account, "
                                "monetary or provision")
        if self.ground not in GROUNDS:
            raise DecisionError("say the ground: 'illegal' (with the legal ground) or 'terms'")
        if self.ground == "illegal" and not self.legal_ground.strip():
            raise DecisionError("illegal content needs the legal ground it breaks")
        if not self.category or not self.facts.strip():
            raise DecisionError("a restriction needs a category and the facts")
        try:
            validate_dsa(self.category, list(self.keywords))
        except ValueError as exc:
            raise DecisionError(str(exc)) from None


@dataclass(frozen=True)
class Decided:
    reference: str
    outcome: Outcome
    # Shown once, for the affected user, through the platform's webhook: opens a complaint.
    complaint_secret: str | None
    suspension_complaint_secret: str | None  # when this decision led to a suspension
    events: tuple[str, ...]
    statements: tuple[str, ...]  # puids


@dataclass(frozen=True)
class _Source:
    """What the case is about, whatever it came from."""

    kind: Source
    reference: str  # the notice's or the gateway decision's
    location: str
    content_date: datetime
    end_user: str | None
    hashes: dict[str, str]
    source_type: str
    automated_detection: bool
    notice: Notice | None = None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_NOTICE_SOURCE_TYPES = {"art16": "SOURCE_ARTICLE_16",
                        "take_it_down": "SOURCE_TYPE_OTHER_NOTIFICATION",
                        "authority_order": "SOURCE_TYPE_OTHER_NOTIFICATION"}


def _notice_source(session: Session, reference: str) -> _Source:
    notice = session.scalar(select(Notice).where(Notice.reference == reference))
    if notice is None:
        raise DecisionError(f"the case's notice {reference} is gone")
    source_type = ("SOURCE_TRUSTED_FLAGGER" if notice.trusted_flagger
                   else _NOTICE_SOURCE_TYPES[notice.kind])
    return _Source(Source.NOTICE, notice.reference, notice.location, notice.received_at,
                   None, {}, source_type, automated_detection=False, notice=notice)


def _automated_source(session: Session, reference: str) -> _Source:
    record = session.scalar(select(DecisionRecord).where(DecisionRecord.reference == reference))
    if record is None:
        raise DecisionError(f"the case's gateway decision {reference} is gone")
    return _Source(Source.DECISION, record.reference, f"waakhond:{record.reference}",
                   record.at, record.end_user, _bankable(record.hashes or {}),
                   "SOURCE_VOLUNTARY", automated_detection=True)


def _bankable(hashes: dict[str, Any]) -> dict[str, str]:
    """The hashes worth matching copies on: a low-quality PDQ (a flat image) would match
    unrelated images, so it is left out, as the matcher does."""
    kept = {kind: hashes[kind] for kind in ("md5", "sha256") if kind in hashes}
    if "pdq" in hashes and hashes.get("pdq_quality", 0) >= MIN_PDQ_QUALITY:
        kept["pdq"] = hashes["pdq"]
    if hashes.get("pdq_inside_border"):  # only there when good enough; the screen banks it
        kept["pdq_inside_border"] = hashes["pdq_inside_border"][0]
    return kept


def _source(session: Session, case: Case) -> _Source:
    if case.source == Source.NOTICE:
        return _notice_source(session, case.source_reference)
    if case.source == Source.DECISION:
        return _automated_source(session, case.source_reference)
    raise DecisionError("a complaint is decided with decide_complaint")


def hold(session: Session, case_reference: str, reviewer: str) -> Case:
    """Close the case for this reviewer, or refuse: only its holder decides it, once."""
    closed = session.execute(
        update(Case).where(Case.reference == case_reference, Case.status == "assigned",
                           Case.assignee == reviewer).values(status="decided"))
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise DecisionError(f"you do not hold case {case_reference}; claim it first")
    case = session.scalar(select(Case).where(Case.reference == case_reference))
    assert case is not None
    return case


def _keywords(decision: DecisionInput) -> list[str]:
    keywords = list(decision.keywords)
    return synthetic_keywords(keywords) if decision.synthetic else keywords


def _content_types(decision: DecisionInput) -> list[str]:
    types = list(decision.content_type)
    if decision.synthetic and SYNTHETIC_MEDIA not in types:
        types.append(SYNTHETIC_MEDIA)
    return types


def _row(case: Case, source: _Source, decision: DecisionInput, reviewer: str,
         complaint_secret: str | None) -> ModerationDecision:
    restriction = decision.restriction
    restricts = decision.outcome is Outcome.RESTRICT
    return ModerationDecision(
        reference=f"act_{secrets.token_hex(10)}", case_reference=case.reference,
        outcome=decision.outcome.value,
        ground=GROUNDS[decision.ground] if restricts and decision.ground else None,
        legal_ground=decision.legal_ground, facts=decision.facts, category=decision.category,
        keywords=_keywords(decision), visibility=list(restriction.visibility),
        account=restriction.account, monetary=restriction.monetary,
        provision=restriction.provision, territorial_scope=list(decision.territorial_scope),
        content_type=_content_types(decision), content_location=source.location,
        content_date=source.content_date, end_user=decision.end_user or source.end_user,
        hashes=decision.hashes or source.hashes or None,
        automated_detection=source.automated_detection, automated_decision=NOT_AUTOMATED,
        complaint_secret_sha256=digest(complaint_secret) if complaint_secret else None,
        manifestly_unfounded=decision.manifestly_unfounded,
        decided_by=reviewer, decided_at=datetime.now(UTC))


def _statement(session: Session, row: ModerationDecision, source_type: str) -> str:
    puid = new_puid()
    try:
        payload = statement_for(row, source_type, row.automated_decision, puid)
    except ValueError as exc:  # e.g. an e-mail address in the facts: nothing is stored
        raise DecisionError(f"the statement of reasons would be invalid: {exc}") from None
    session.add(StatementOfReasons(puid=puid, decision_reference=row.reference,
                                   payload=payload))
    return puid


def _user_notice(row: ModerationDecision, complaint_secret: str | None) -> dict[str, Any]:
    """The statement of reasons for the affected user (Art. 17), which the platform passes
    on: what was restricted, why, whether machines were involved, and how to complain."""
    return {"decision": row.reference, "content": row.content_location,
            "visibility": row.visibility, "account": row.account, "monetary": row.monetary,
            "provision": row.provision, "ground": row.ground, "legal_ground": row.legal_ground,
            "category": row.category, "keywords": row.keywords, "facts": row.facts,
            "automated_detection": row.automated_detection,
            "automated_decision": row.automated_decision,
            "territorial_scope": row.territorial_scope,
            "complaint_secret": complaint_secret,
            "complaint_until": iso(row.decided_at + COMPLAINT_WINDOW),
            "redress": REDRESS}


def _notice_outcome(session: Session, notice: Notice, row: ModerationDecision) -> str:
    """Record the outcome on the notice, and tell the platform so it can write to the
    notifier (Art. 16(5): the decision and the redress options)."""
    notice.status, notice.decided_at = "decided", row.decided_at
    notice.decision_reference = row.reference
    return enqueue(session, "notice.decided", {
        "notice": notice.reference, "notifier_email": notice.notifier_email,
        "decision": row.reference, "outcome": row.outcome, "automated_decision": False,
        "manifestly_unfounded": row.manifestly_unfounded, "redress": REDRESS})


def _suspension(row: ModerationDecision, strikes: int, secret: str) -> ModerationDecision:
    return ModerationDecision(
        reference=f"act_{secrets.token_hex(10)}", case_reference=row.case_reference,
        outcome=Outcome.RESTRICT.value, ground=row.ground, legal_ground=row.legal_ground,
        facts=(f"The account was suspended after {strikes} decisions on manifestly illegal "
               f"content (DSA Art. 23), after an earlier warning. The last: {row.facts}"),
        category=row.category, keywords=row.keywords, visibility=[], account=ACCOUNT_SUSPENDED,
        territorial_scope=row.territorial_scope, content_type=row.content_type,
        content_location=row.content_location, content_date=row.content_date,
        end_user=row.end_user, automated_detection=row.automated_detection,
        automated_decision=PARTLY_AUTOMATED, complaint_secret_sha256=digest(secret),
        decided_by="waakhond (DSA Art. 23 rule)", decided_at=row.decided_at)


def _account_strike(session: Session, row: ModerationDecision,
                    source_type: str) -> tuple[list[str], list[str], str | None]:
    """Art. 23: illegal content counts against the account; a warning comes first and a
    suspension follows repetition. A suspension is a restriction of its own, with its own
    statement of reasons and its own right to complain. Returns events, puids and the
    suspension's complaint secret."""
    if row.ground != GROUNDS["illegal"] or not row.end_user:
        return [], [], None
    already = EndUsers.standing_in(session, row.end_user).suspended
    standing = EndUsers.strike_in(session, row.end_user, Action.BLOCK)
    if standing.suspended and not already:
        secret = secrets.token_urlsafe(24)
        suspension = _suspension(row, standing.strikes, secret)
        session.add(suspension)
        event = enqueue(session, "account.suspended",
                        {**_user_notice(suspension, secret), "user": row.end_user})
        return [event], [_statement(session, suspension, source_type)], secret
    if standing.warning:
        return [enqueue(session, "account.warned", {"user": row.end_user,
                                                    "decision": row.reference,
                                                    "warning": standing.warning})], [], None
    return [], [], None


def _removes(row: ModerationDecision) -> bool:
    return bool(row.hashes) and bool(set(row.visibility) & REMOVALS)


def restore(session: Session, decision: ModerationDecision, at: datetime) -> str:
    """Undo a restriction found wrong: the platform restores the content (and the account,
    for a suspension). Returns the event id."""
    decision.reversed_at = at
    if decision.account == ACCOUNT_SUSPENDED and decision.end_user:
        EndUsers.reinstate_in(session, decision.end_user)
    return enqueue(session, "content.restored", {
        "decision": decision.reference, "content": decision.content_location,
        "user": decision.end_user, "visibility": decision.visibility,
        "account": decision.account, "hashes": decision.hashes})


@dataclass
class Effects:
    """What a decision sets in motion, gathered inside its transaction; the hash bank
    changes follow once it is committed."""

    events: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    suspension_secret: str | None = None
    remove: dict[str, str] = field(default_factory=dict)
    withdraw: dict[str, str] = field(default_factory=dict)

    def restrict(self, session: Session, row: ModerationDecision, source_type: str,
                 secret: str | None) -> None:
        self.statements.append(_statement(session, row, source_type))
        # The platform removes the content and its identical copies (the hashes), and
        # passes the statement of reasons to the user.
        self.events.append(enqueue(session, "content.restricted", {
            **_user_notice(row, secret), "hashes": row.hashes, "user": row.end_user}))
        events, statements, self.suspension_secret = _account_strike(session, row,
                                                                     source_type)
        self.events += events
        self.statements += statements
        if _removes(row):
            self.remove = dict(row.hashes or {})

    def undo(self, session: Session, restriction: ModerationDecision, at: datetime) -> None:
        self.events.append(restore(session, restriction, at))
        self.withdraw = dict(restriction.hashes or {})


class Removals:
    """The own-removals bank kept in step with decisions: removed content joins it, so a
    re-upload or an identical copy is blocked (TAKE IT DOWN: identical copies go too);
    restored content leaves it."""

    def __init__(self, banks: BankService) -> None:
        self.banks = banks

    def apply(self, effects: Effects, decision_reference: str) -> None:
        if effects.remove:
            self.banks.ensure(OWN_REMOVALS_BANK, BankKind.OWN_REMOVALS, "waakhond decisions")
            self.banks.add(OWN_REMOVALS_BANK, [
                EntryInput(REMOVAL_SIGNALS[kind], value, metadata={"decision": decision_reference})
                for kind, value in effects.remove.items() if kind in REMOVAL_SIGNALS])
        for kind, value in effects.withdraw.items():
            if kind in REMOVAL_SIGNALS:
                # Not there when the bank was cleared: nothing to withdraw.
                with contextlib.suppress(BankError):
                    self.banks.set_status(OWN_REMOVALS_BANK, REMOVAL_SIGNALS[kind], value,
                                          EntryStatus.WITHDRAWN)


def _prior_restriction(session: Session, source: _Source) -> ModerationDecision | None:
    """The fully automated restriction the gateway already applied to this content, if any."""
    if source.kind is not Source.DECISION:
        return None
    return session.scalar(select(ModerationDecision).where(
        ModerationDecision.case_reference == source.reference,
        ModerationDecision.automated_decision == FULLY_AUTOMATED,
        ModerationDecision.reversed_at.is_(None)))


class Decisions:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.removals = Removals(BankService(db))

    def decide(self, case_reference: str, reviewer: str, decision: DecisionInput) -> Decided:
        decision.check()
        with self.db.session() as session:
            case = hold(session, case_reference, reviewer)
            source = _source(session, case)
            if decision.manifestly_unfounded and source.notice is None:
                raise DecisionError("only a notice can be manifestly unfounded")
            prior = _prior_restriction(session, source)
            # A person confirming an automated restriction changes nothing for the user, who
            # had its statement and complaint secret already.
            new_restriction = decision.outcome is Outcome.RESTRICT and prior is None
            secret = secrets.token_urlsafe(24) if new_restriction else None
            row = _row(case, source, decision, reviewer, secret)
            session.add(row)
            effects = Effects()
            if new_restriction:
                effects.restrict(session, row, source.source_type, secret)
            elif prior is not None and decision.outcome is Outcome.NO_ACTION:
                effects.undo(session, prior, row.decided_at)  # the machine was wrong
            if source.notice is not None:
                effects.events.append(_notice_outcome(session, source.notice, row))
            decided = Decided(row.reference, decision.outcome, secret,
                              effects.suspension_secret, tuple(effects.events),
                              tuple(effects.statements))
        self.removals.apply(effects, decided.reference)
        self.audit.append(reviewer, "case.decide", case_reference,
                          {"decision": decided.reference, "outcome": decided.outcome.value,
                           "events": list(decided.events),
                           "statements": list(decided.statements)})
        return decided

    def for_case(self, case_reference: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return [describe(row) for row in session.scalars(
                select(ModerationDecision).where(
                    ModerationDecision.case_reference == case_reference)
                .order_by(ModerationDecision.id))]

    def get(self, reference: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            row = session.scalar(select(ModerationDecision).where(
                ModerationDecision.reference == reference))
            return describe(row) if row else None


def describe(row: ModerationDecision) -> dict[str, Any]:
    return {"reference": row.reference, "case": row.case_reference, "outcome": row.outcome,
            **{key: value for key, value in _user_notice(row, None).items()
               if key not in ("decision", "complaint_secret")},
            "decided_by": row.decided_by, "decided_at": iso(row.decided_at),
            "reversed_at": iso(row.reversed_at)}


@dataclass(frozen=True)
class AutomatedRestriction:
    """The statement of reasons for the uploader, which the platform passes on."""

    decision: str
    visibility: str
    complaint_secret: str
    complaint_until: str
    redress: str = REDRESS


_AUTOMATED_VISIBILITY = {
    Action.AGE_RESTRICT: "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    Action.BLOCK: "DECISION_VISIBILITY_CONTENT_REMOVED",
    Action.BLOCK_AND_REPORT: "DECISION_VISIBILITY_CONTENT_REMOVED",
}


def restrict_automatically(session: Session, gateway_reference: str, verdict: Verdict,
                           end_user: str | None) -> AutomatedRestriction | None:
    """An upload the policy restricted is a fully automated decision (Art. 17(3)(c)): it gets
    a statement of reasons and the uploader may complain. Prompts and generator outputs are
    not: refusing to make something restricts nothing anyone provided to be hosted."""
    visibility = _AUTOMATED_VISIBILITY.get(verdict.action)
    if verdict.context is not Context.UPLOAD or visibility is None or verdict.dsa is None:
        return None
    firing = [reason for reason in verdict.reasons if reason.action is verdict.action]
    legal = "; ".join(dict.fromkeys(r.legal_source for r in firing if r.legal_source))
    illegal = verdict.dsa.decision_ground == GROUNDS["illegal"]
    secret, now = secrets.token_urlsafe(24), datetime.now(UTC)
    row = ModerationDecision(
        reference=f"act_{secrets.token_hex(10)}", case_reference=gateway_reference,
        outcome=Outcome.RESTRICT.value, ground=verdict.dsa.decision_ground,
        legal_ground=(legal or f"waakhond policy rules {', '.join(r.rule_id for r in firing)}"
                      )[:500] if illegal else "",
        facts=("Automated screening of the upload: "
               + " ".join(reason.text for reason in firing))[:5000],
        category=verdict.dsa.category, keywords=list(verdict.dsa.keywords),
        visibility=[visibility], account=None, monetary=None, provision=None,
        territorial_scope=[verdict.country] if verdict.country in TERRITORIES else [],
        content_type=["CONTENT_TYPE_IMAGE"], content_location=f"waakhond:{gateway_reference}",
        content_date=now, end_user=end_user,
        hashes=_bankable(verdict.signals.get("hashes") or {}) or None,
        automated_detection=True, automated_decision=FULLY_AUTOMATED,
        complaint_secret_sha256=digest(secret),
        decided_by=f"waakhond policy {verdict.policy_version}", decided_at=now)
    session.add(row)
    _statement(session, row, "SOURCE_VOLUNTARY")
    return AutomatedRestriction(row.reference, visibility, secret,
                                iso(now + COMPLAINT_WINDOW) or "")
