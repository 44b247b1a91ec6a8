"""Signed webhooks: how actions (a restriction to apply, content to restore) reach the platform.

An event is written to the database in the same transaction as the decision that caused it
(an outbox), and sent from there: a crash or an unreachable platform loses nothing, and a
decision that is rolled back sends nothing. Failed sends are retried with exponential back-off
(waakhond.background.retry_delay, at least once an hour); after ``FAILING_AFTER`` failed
attempts the delivery is marked ``failing``, counted in ``/metrics`` and listed by
``GET /v1/webhooks``, and still retried.

The receiving side, for the platform's engineers
-------------------------------------------------
Each event is an HTTP ``POST`` to the configured URL with a JSON body::

    {"id": "evt_...", "type": "restriction.applied", "created_at": "2026-...+00:00",
     "data": {...}}

and these headers::

    X-Waakhond-Event-Id:   evt_...      (the same as the body's id)
    X-Waakhond-Event-Type: restriction.applied
    X-Waakhond-Timestamp:  1767225600   (unix seconds when this attempt was signed)
    X-Waakhond-Signature:  sha256=<hex>

1. Check the signature on the raw body bytes, before parsing them: it is the hex HMAC-SHA256,
   keyed with the shared secret (UTF-8), of the timestamp header, a full stop, and the body:
   ``hmac(secret, f"{timestamp}.".encode() + body, sha256)``. Compare in constant time.
2. Refuse a timestamp more than five minutes from your clock: the timestamp is signed, so
   an intercepted request cannot be replayed later.
3. Deduplicate on the event id. Every event is sent *at least* once: when your 2xx answer
   is lost (a time-out, a dropped connection) the same event comes again with the same id.
   Apply it once, and answer 2xx to the repeats too, or they keep coming.
4. Answer 2xx only once the event is applied or durably queued on your side. Any other
   answer, or none within the time-out (10 s by default), means "send it again". Redirects
   are not followed.

``verify_signature`` does steps 1 and 2 for receivers written in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from prometheus_client import Gauge
from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from waakhond import __version__
from waakhond.background import retry_delay
from waakhond.store import Database
from waakhond.store.models import WebhookDelivery, utcnow

log = logging.getLogger(__name__)

# After this many failed attempts (a minute or two of back-off) a delivery shows as failing.
FAILING_AFTER = 6
BATCH_SIZE = 50
SIGNATURE_TOLERANCE_S = 300
# How long a claimed event is kept from other senders beyond the time-out of its send.
LEASE_MARGIN = timedelta(seconds=30)

# Set when /metrics is read (update_metrics), so an alert can fire on failing deliveries.
WEBHOOK_DELIVERIES = Gauge("waakhond_webhook_deliveries", "Webhook deliveries by status",
                           ["status"])

Clock = Callable[[], datetime]
Described = dict[str, Any]
# Spelled out here: inside Webhooks, ``list`` is the method.
Deliveries = list[WebhookDelivery]
Listing = list[Described]


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILING = "failing"


_UNDELIVERED = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILING.value)


def enqueue(session: Session, event_type: str, payload: dict[str, Any]) -> str:
    """Add an event in the caller's open transaction, so it exists exactly when the decision
    that caused it does; returns its id, which the platform deduplicates on."""
    event_id = f"evt_{secrets.token_hex(16)}"
    now = utcnow()
    session.add(WebhookDelivery(event_id=event_id, event_type=event_type, payload=payload,
                                status=DeliveryStatus.PENDING.value, attempts=0,
                                last_error="", created_at=now, next_attempt_at=now))
    return event_id


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Waakhond-Signature`` value for a body sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: str, timestamp: str | int, body: bytes, signature: str,
                     tolerance_s: float = SIGNATURE_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """For receivers: the request came from us, unchanged, and recently (``timestamp`` and
    ``signature`` are the header values; ``now`` is unix seconds, the clock by default)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text, which a header can carry.
    return hmac.compare_digest(sign(secret, sent_at, body).encode(), signature.encode())


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # SQLite hands back naive datetimes; everything stored is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _is_due(now: datetime) -> ColumnElement[bool]:
    return and_(WebhookDelivery.status.in_(_UNDELIVERED),
                WebhookDelivery.next_attempt_at <= now)


def _fixed(moment: datetime) -> Clock:
    return lambda: moment


def _body(delivery: WebhookDelivery) -> bytes:
    event = {"id": delivery.event_id, "type": delivery.event_type,
             "created_at": _iso(delivery.created_at), "data": delivery.payload}
    return json.dumps(event, separators=(",", ":")).encode()


def _describe(delivery: WebhookDelivery) -> Described:
    return {"event_id": delivery.event_id, "event_type": delivery.event_type,
            "status": delivery.status, "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "next_attempt_at": _iso(delivery.next_attempt_at),
            "created_at": _iso(delivery.created_at),
            "delivered_at": _iso(delivery.delivered_at), "data": delivery.payload}


class Webhooks:
    """Sends due events to the platform's URL, and shows what waits or fails."""

    def __init__(self, db: Database, url: str, secret: str, timeout_s: float = 10.0,
                 clock: Clock = utcnow) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError(f"the webhook URL must be http(s), not {url!r}")
        if not secret:
            raise ValueError("webhooks need a signing secret (WAAKHOND_WEBHOOK_SECRET)")
        self.db = db
        self.url = url
        self._secret = secret
        self._clock = clock
        # httpx applies the time-out to each phase (connect, write, read, pool), so a send
        # can take up to four of them. Should one outlive its lease all the same, another
        # sender sends the event again: a duplicate, which receivers ignore by event id.
        self._lease = timedelta(seconds=4 * timeout_s) + LEASE_MARGIN
        # One client for the process: building one (its TLS context) takes tens of ms, and
        # its pool keeps connections to the platform open between rounds.
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def deliver_due(self, now: datetime | None = None) -> int:
        """Send every due event (a batch, oldest first); returns how many were delivered.
        ``now`` fixes the time (tests); otherwise each claim reads the clock, as a batch of
        slow sends can take minutes."""
        clock = self._clock if now is None else _fixed(now)
        delivered = 0
        for delivery in self._due(clock()):
            if self._claim(delivery.id, clock()):
                delivered += self._send(delivery, clock)
        return delivered

    def _due(self, now: datetime) -> Deliveries:
        with self.db.session() as session:
            return list(session.scalars(select(WebhookDelivery).where(_is_due(now))
                                        .order_by(WebhookDelivery.id).limit(BATCH_SIZE)))

    def _claim(self, delivery_id: int, now: datetime) -> bool:
        """One conditional UPDATE: only the sender that still finds the event due gets it,
        and moving its next attempt past the lease keeps every other sender off it."""
        with self.db.session() as session:
            claimed = session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, _is_due(now))
                .values(next_attempt_at=now + self._lease))
            return claimed.rowcount == 1  # type: ignore[attr-defined]

    def _send(self, delivery: WebhookDelivery, clock: Clock) -> bool:
        body = _body(delivery)
        try:
            answer = self._client.post(self.url, content=body,
                                       headers=self._headers(delivery, body))
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL (and any token in it): the type says
            # enough (ReadTimeout, ConnectError...).
            self._failed(delivery, f"no answer: {type(exc).__name__}", clock())
            return False
        if answer.is_success:
            self._delivered(delivery, clock())
            return True
        self._failed(delivery, f"HTTP {answer.status_code} {answer.reason_phrase}".strip(),
                     clock())
        return False

    def _headers(self, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
        # Wall-clock time, whatever the scheduling clock says: the receiver compares the
        # timestamp with its own clock.
        timestamp = int(time.time())
        return {"Content-Type": "application/json", "User-Agent": f"waakhond/{__version__}",
                "X-Waakhond-Event-Id": delivery.event_id,
                "X-Waakhond-Event-Type": delivery.event_type,
                "X-Waakhond-Timestamp": str(timestamp),
                "X-Waakhond-Signature": sign(self._secret, timestamp, body)}

    def _delivered(self, delivery: WebhookDelivery, now: datetime) -> None:
        with self.db.session() as session:
            session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                .values(status=DeliveryStatus.DELIVERED.value, delivered_at=now,
                        attempts=delivery.attempts + 1))

    def _failed(self, delivery: WebhookDelivery, error: str, now: datetime) -> None:
        attempts = delivery.attempts + 1
        failing = attempts >= FAILING_AFTER
        if failing and delivery.status != DeliveryStatus.FAILING:
            log.warning("webhook %s failed %d times, last: %s", delivery.event_id, attempts,
                        error)
        status = DeliveryStatus.FAILING if failing else DeliveryStatus.PENDING
        with self.db.session() as session:
            # Never over a delivery: a sender whose lease ran out may have delivered it since.
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id,
                       WebhookDelivery.status != DeliveryStatus.DELIVERED.value)
                .values(status=status.value, attempts=attempts, last_error=error,
                        next_attempt_at=now + retry_delay(attempts)))

    def overview(self) -> dict[str, int]:
        """How many deliveries are pending, delivered and failing."""
        counts = {status.value: 0 for status in DeliveryStatus}
        with self.db.session() as session:
            for status, number in session.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)):
                counts[status] = number
        return counts

    def update_metrics(self) -> None:
        for status, number in self.overview().items():
            WEBHOOK_DELIVERIES.labels(status).set(number)

    def list(self, status: DeliveryStatus | str | None = None, limit: int = 50) -> Listing:
        """The newest deliveries, in one status or all."""
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if status is not None:
            query = query.where(WebhookDelivery.status == DeliveryStatus(status).value)
        with self.db.session() as session:
            return [_describe(delivery) for delivery in session.scalars(query)]

    def get(self, event_id: str) -> Described | None:
        with self.db.session() as session:
            delivery = session.scalar(
                select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
            return _describe(delivery) if delivery else None

    def retry_now(self, event_id: str) -> bool:
        """Make an undelivered event due now, whatever its back-off (a person pressed
        "retry"); False when there is no such event or it was delivered."""
        with self.db.session() as session:
            retried = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.event_id == event_id,
                       WebhookDelivery.status.in_(_UNDELIVERED))
                .values(next_attempt_at=self._clock()))
            return retried.rowcount == 1  # type: ignore[attr-defined]
