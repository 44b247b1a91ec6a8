"""Notices of illegal content (DSA Art. 16), TAKE IT DOWN Act requests and authority orders.

Intake is the part that must never lose anything: a notice and its case are committed to the
database together before its receipt is returned, so an acknowledged notice survives a crash
(tested with kill -9). A child sexual abuse notice may be anonymous (Art. 16(2)(c)); every
other notice names its notifier. Priority: child safety first, then trusted flaggers (Art. 22)
and authority orders, then everyone else; a TAKE IT DOWN request carries a 48-hour clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.cases.decisions import REDRESS
from waakhond.cases.queues import Routing, Source, open_case
from waakhond.policy.dsa import CATEGORIES
from waakhond.store import Database
from waakhond.store.models import ModerationDecision, Notice, aware, iso

CHILD_SAFETY = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
TAKE_IT_DOWN_HOURS = 48
# Art. 23(2): a notifier whose notices are often manifestly unfounded is warned, then their
# notices are not processed for a while. Counted over a window, so old mistakes expire.
MISUSE_WINDOW = timedelta(days=90)
MISUSE_WARN_AT, MISUSE_SUSPEND_AT = 2, 4
MISUSE_SUSPENSION = timedelta(days=30)
PRIORITY_CHILD_SAFETY, PRIORITY_TRUSTED, PRIORITY_OTHER = 0, 1, 2


class NoticeKind(StrEnum):
    ART16 = "art16"  # a notice from anyone (DSA Art. 16)
    TAKE_IT_DOWN = "take_it_down"  # a request under the US TAKE IT DOWN Act (48 hours)
    AUTHORITY_ORDER = "authority_order"  # an order from a judicial or administrative authority


class NoticeError(ValueError):
    """The notice cannot be accepted as given; the message says what is missing."""


class NotifierSuspended(NoticeError):
    """This notifier's notices are not processed for now (Art. 23(2))."""


@dataclass(frozen=True)
class NoticeInput:
    kind: NoticeKind
    category: str
    location: str
    explanation: str
    good_faith: bool
    notifier_name: str | None = None
    notifier_email: str | None = None
    authority: str | None = None


@dataclass(frozen=True)
class Receipt:
    reference: str
    status_secret: str  # shown once: with the reference it opens the notice's status
    received_at: datetime
    deadline_at: datetime | None
    priority: int
    warning: str | None = None  # Art. 23(2): before notices stop being processed


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()



def check(notice: NoticeInput) -> None:
    """What Art. 16(2) asks a notice to contain, with the exception for child abuse."""
    if notice.category not in CATEGORIES:
        raise NoticeError(f"unknown category {notice.category!r}; use a STATEMENT_CATEGORY_* key")
    if not notice.location.strip() or not notice.explanation.strip():
        raise NoticeError("a notice needs the exact location of the content and an explanation")
    if not notice.good_faith:
        raise NoticeError("a notice needs the statement that it is made in good faith")
    anonymous = not (notice.notifier_name and notice.notifier_email)
    if anonymous and notice.category != CHILD_SAFETY:
        raise NoticeError("give your name and e-mail address (only notices of child sexual "
                          "abuse may be anonymous)")
    if notice.kind is NoticeKind.AUTHORITY_ORDER and not notice.authority:
        raise NoticeError("an authority order names the authority")


def _priority(notice: NoticeInput, trusted_flagger: str | None) -> int:
    if notice.category == CHILD_SAFETY:
        return PRIORITY_CHILD_SAFETY
    if trusted_flagger or notice.kind is NoticeKind.AUTHORITY_ORDER:
        return PRIORITY_TRUSTED
    return PRIORITY_OTHER


def _misuse(session: Session, trusted_flagger: str | None, email: str | None,
            now: datetime) -> str | None:
    """Refuse the notice while the notifier is suspended; otherwise a warning, or None."""
    if trusted_flagger:
        notifier = Notice.trusted_flagger == trusted_flagger
    elif email:
        notifier = Notice.notifier_email == email
    else:
        return None  # anonymous: nothing to count against
    unfounded = session.scalars(
        select(ModerationDecision.decided_at)
        .join(Notice, Notice.decision_reference == ModerationDecision.reference)
        .where(notifier, ModerationDecision.manifestly_unfounded,
               ModerationDecision.decided_at >= now - MISUSE_WINDOW)
        .order_by(ModerationDecision.decided_at)).all()
    if len(unfounded) >= MISUSE_SUSPEND_AT:
        until = aware(unfounded[-1]) + MISUSE_SUSPENSION
        if until > now:
            raise NotifierSuspended(
                f"after {len(unfounded)} manifestly unfounded notices, and a warning, notices "
                f"from you are not processed until {until.date().isoformat()} (DSA Art. 23(2))")
    if len(unfounded) >= MISUSE_WARN_AT:
        return (f"{len(unfounded)} of your recent notices were manifestly unfounded; at "
                f"{MISUSE_SUSPEND_AT} your notices stop being processed for "
                f"{MISUSE_SUSPENSION.days} days (DSA Art. 23(2))")
    return None


class Notices:
    def __init__(self, db: Database) -> None:
        self.db = db

    def receive(self, notice: NoticeInput, trusted_flagger: str | None = None) -> Receipt:
        """Store the notice; the receipt is only returned once it is committed."""
        check(notice)
        reference, secret = f"ntc_{secrets.token_hex(10)}", secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        deadline = (now + timedelta(hours=TAKE_IT_DOWN_HOURS)
                    if notice.kind is NoticeKind.TAKE_IT_DOWN else None)
        priority = _priority(notice, trusted_flagger)
        email = notice.notifier_email.strip().lower() if notice.notifier_email else None
        with self.db.session() as session:
            warning = _misuse(session, trusted_flagger, email, now)
            session.add(Notice(
                reference=reference, status_secret_sha256=_digest(secret),
                kind=notice.kind.value, category=notice.category, location=notice.location,
                explanation=notice.explanation, notifier_name=notice.notifier_name or None,
                notifier_email=email, good_faith=notice.good_faith,
                trusted_flagger=trusted_flagger, authority=notice.authority,
                priority=priority, received_at=now, acknowledged_at=now, deadline_at=deadline))
            open_case(session, Source.NOTICE, reference, Routing(
                category=notice.category,
                trusted=priority == PRIORITY_TRUSTED,
                intimate=notice.kind is NoticeKind.TAKE_IT_DOWN,
                legal_deadline=deadline))
        return Receipt(reference, secret, now, deadline, priority, warning)

    def status(self, reference: str, secret: str) -> dict[str, Any] | None:
        """What the notifier may see. None for a wrong reference or secret alike, so
        references cannot be probed."""
        with self.db.session() as session:
            notice = session.scalar(select(Notice).where(Notice.reference == reference))
            if notice is None or not hmac.compare_digest(notice.status_secret_sha256,
                                                         _digest(secret)):
                return None
            public = self._public(notice)
            if notice.decision_reference:
                decision = session.scalar(select(ModerationDecision).where(
                    ModerationDecision.reference == notice.decision_reference))
                assert decision is not None
                # Art. 16(5): the decision, that a person took it, and the redress options.
                public["decision"] = {"reference": decision.reference,
                                      "outcome": decision.outcome,
                                      "decided_at": iso(decision.decided_at),
                                      "automated_decision": False, "redress": REDRESS}
            return public

    def queue(self, limit: int = 100) -> list[dict[str, Any]]:
        """Open notices in the order they should be handled."""
        with self.db.session() as session:
            rows = session.scalars(
                select(Notice).where(Notice.status == "received")
                .order_by(Notice.priority, Notice.deadline_at.is_(None), Notice.deadline_at,
                          Notice.received_at).limit(limit))
            return [{**self._public(n), "category": n.category, "location": n.location,
                     "trusted_flagger": n.trusted_flagger, "priority": n.priority}
                    for n in rows]

    def references(self) -> set[str]:
        with self.db.session() as session:
            return set(session.scalars(select(Notice.reference)))

    @staticmethod
    def _public(notice: Notice) -> dict[str, Any]:
        return {"reference": notice.reference, "kind": notice.kind, "status": notice.status,
                "received_at": iso(notice.received_at), "deadline_at": iso(notice.deadline_at)}
