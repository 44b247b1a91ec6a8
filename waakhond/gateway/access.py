"""Who may call the gateway, how often, and what happens to end users who keep trying to make
abusive content.

- API keys: ``wk_<prefix>_<secret>``; only the secret's SHA-256 is stored. Each key has scopes
  and a per-minute request limit.
- End users: the client passes its own user id (``user`` or ``safety_identifier`` in the
  OpenAI API, ``end_user`` elsewhere). Every blocked attempt is a strike; at WARN_AT strikes
  the answer carries a warning (DSA Art. 23 asks for one before a suspension), at THROTTLE_AT
  the user is slowed down, at SUSPEND_AT suspended until a person lifts it. Strikes older than
  STRIKE_WINDOW are forgiven, so an old mistake does not count forever.
- Tiers: what a user may do. Only ``verified`` users may edit photos that show a person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from waakhond.core import Action
from waakhond.store import Database
from waakhond.store.models import ApiKey, EndUser, aware

KEY_PREFIX = "wk"
WARN_AT, THROTTLE_AT, SUSPEND_AT = 2, 3, 5
# A report-worthy attempt (sexual content of a minor) counts as this many strikes.
REPORT_STRIKES = 3
STRIKE_WINDOW = timedelta(days=30)
THROTTLE_FOR = timedelta(minutes=10)
MAX_BUCKETS = 10_000  # rate-limit buckets kept before idle ones are forgotten
# A key that authenticated is remembered this long, so most requests do not read the keys
# table (that read was a tenth of the server's time per prompt screen, bench/gateway.py). A key
# revoked through this process stops at once; one revoked by another process (the CLI, another
# server worker) stops within this many seconds.
KNOWN_KEY_SECONDS = 2.0


class Scope(StrEnum):
    SCREEN = "screen"  # screen prompts and images, match hashes, verify provenance
    GENERATE = "generate"  # the OpenAI-compatible image endpoints
    MODERATE = "moderate"  # read decisions, lift throttles
    ADMIN = "admin"  # manage keys and end users
    AUDIT = "audit"  # read the decision log and preserved evidence
    FLAG = "flag"  # a trusted flagger (DSA Art. 22): notices sent with this key come first


class Tier(StrEnum):
    BASIC = "basic"
    VERIFIED = "verified"  # identity checked by the client platform: may edit photos of people

    @classmethod
    def parse(cls, value: str) -> Tier:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown tier {value!r}; use one of: "
                             f"{', '.join(t.value for t in cls)}") from None


class AccessDenied(Exception):
    """The caller may not do this. ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Caller:
    """An authenticated key."""

    key_id: int
    name: str
    scopes: frozenset[str]
    requests_per_minute: int

    def require(self, scope: Scope) -> None:
        if scope.value not in self.scopes and Scope.ADMIN.value not in self.scopes:
            raise AccessDenied(f"this API key lacks the '{scope.value}' scope",
                               "insufficient_scope", 403)


@dataclass(frozen=True)
class NewKey:
    key_id: int
    name: str
    prefix: str
    scopes: list[str]
    token: str  # shown once; only its hash is stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)



def parse_scopes(values: list[str]) -> list[str]:
    known = {scope.value for scope in Scope}
    unknown = sorted(set(values) - known)
    if unknown or not values:
        raise ValueError(f"unknown or missing scopes {unknown}; use: {', '.join(sorted(known))}")
    return sorted(set(values))


class ApiKeys:
    """Create, check and revoke API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, tuple[float, Caller]] = {}  # token digest -> (until, caller)

    def create(self, name: str, scopes: list[str], requests_per_minute: int = 600) -> NewKey:
        scopes = parse_scopes(scopes)
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
        with self.db.session() as session:
            key = ApiKey(name=name, prefix=prefix, secret_sha256=_digest(secret), scopes=scopes,
                         requests_per_minute=requests_per_minute)
            session.add(key)
            session.flush()
            key_id = key.id
        return NewKey(key_id, name, prefix, scopes, f"{KEY_PREFIX}_{prefix}_{secret}")

    def authenticate(self, token: str) -> Caller:
        token_digest = _digest(token)
        until, known = self._known.get(token_digest, (0.0, None))
        if known is not None and time.monotonic() < until:
            return known
        found = self._look_up(token)  # raises for a bad token: only real keys are remembered
        self._known[token_digest] = (time.monotonic() + KNOWN_KEY_SECONDS, found)
        return found

    def _look_up(self, token: str) -> Caller:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise AccessDenied("malformed API key", "invalid_api_key", 401)
        with self.db.session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
            if key is None or not hmac.compare_digest(key.secret_sha256, _digest(parts[2])):
                raise AccessDenied("unknown API key", "invalid_api_key", 401)
            if key.revoked_at is not None:
                raise AccessDenied("this API key was revoked", "invalid_api_key", 401)
            return Caller(key.id, key.name, frozenset(key.scopes), key.requests_per_minute)

    def list(self) -> list[dict[str, object]]:
        with self.db.session() as session:
            return [
                {"id": key.id, "name": key.name, "prefix": key.prefix, "scopes": key.scopes,
                 "requests_per_minute": key.requests_per_minute,
                 "created_at": key.created_at.isoformat(),
                 "revoked": key.revoked_at is not None}
                for key in session.scalars(select(ApiKey).order_by(ApiKey.id))
            ]

    def revoke(self, key_id: int) -> bool:
        with self.db.session() as session:
            key = session.get(ApiKey, key_id)
            if key is None or key.revoked_at is not None:
                return False
            key.revoked_at = _now()
        self._known = {digest: entry for digest, entry in self._known.items()
                       if entry[1].key_id != key_id}
        return True

    def any_exist(self) -> bool:
        with self.db.session() as session:
            return session.scalar(select(ApiKey.id).limit(1)) is not None


class RateLimiter:
    """A token bucket per name (an API key, or the address of an anonymous sender):
    ``per_minute`` on average, bursts up to that many. In memory, per process: the embedded
    default is one process."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, bucket: str, per_minute: int) -> None:
        rate, capacity = per_minute / 60.0, float(per_minute)
        with self._lock:
            now = self._clock()  # type: ignore[operator]
            tokens, last = self._buckets.get(bucket, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[bucket] = (tokens, now)
                raise AccessDenied(f"rate limit of {per_minute} requests a minute reached; "
                                   f"retry in {(1.0 - tokens) / rate:.1f} s",
                                   "rate_limit_exceeded", 429)
            self._buckets[bucket] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # Anonymous senders come and go: a bucket untouched for an hour is full again anyway.
        self._buckets = {name: state for name, state in self._buckets.items()
                         if now - state[1] < 3600}


@dataclass(frozen=True)
class Standing:
    """An end user's standing after a request, for the response."""

    strikes: int
    tier: str
    warning: str | None = None
    throttled_until: datetime | None = None
    suspended: bool = False


class EndUsers:
    """Tiers, strikes, throttling and suspension of a client's end users."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def admit(self, external_id: str | None) -> Standing | None:
        """Refuse a suspended or throttled user before any work is done."""
        if not external_id:
            return None
        with self.db.session() as session:
            user = self._get(session, external_id)
            self._forgive_old_strikes(user)
            if user.suspended_at is not None:
                raise AccessDenied("this user is suspended for repeated attempts to create "
                                   "prohibited content; the platform can review the suspension",
                                   "user_suspended", 403)
            until = aware(user.throttled_until)
            if until and until > _now():
                seconds = int((until - _now()).total_seconds()) + 1
                raise AccessDenied(f"this user is throttled after blocked attempts; retry in "
                                   f"{seconds} s", "user_throttled", 429)
            return Standing(user.strikes, user.tier)

    def tier(self, external_id: str | None) -> Tier:
        if not external_id:
            return Tier.BASIC
        with self.db.session() as session:
            return Tier(self._get(session, external_id).tier)

    def strike(self, external_id: str | None, action: Action) -> Standing | None:
        """Count a blocked attempt; returns the user's standing with any warning."""
        if not external_id:
            return None
        with self.db.session() as session:
            return self.strike_in(session, external_id, action)

    @classmethod
    def standing_in(cls, session: Session, external_id: str) -> Standing:
        user = cls._get(session, external_id)
        return Standing(user.strikes, user.tier, suspended=user.suspended_at is not None)

    @classmethod
    def strike_in(cls, session: Session, external_id: str, action: Action) -> Standing:
        """The same, in the caller's transaction (a moderator's decision and its strike are
        one change)."""
        user = cls._get(session, external_id)
        cls._forgive_old_strikes(user)
        user.strikes += REPORT_STRIKES if action is Action.BLOCK_AND_REPORT else 1
        user.last_strike_at = _now()
        return cls._consequences(user)

    def set(self, external_id: str, tier: str | None = None,
            reinstate: bool = False) -> dict[str, object]:
        with self.db.session() as session:
            user = self._get(session, external_id)
            if tier is not None:
                user.tier = Tier.parse(tier).value
            if reinstate:
                self._reinstate(user)
            return self._describe(user)

    @classmethod
    def reinstate_in(cls, session: Session, external_id: str) -> None:
        """Lift a suspension, in the caller's transaction (a complaint reversed it)."""
        cls._reinstate(cls._get(session, external_id))

    @staticmethod
    def _reinstate(user: EndUser) -> None:
        user.strikes, user.suspended_at, user.throttled_until = 0, None, None
        user.suspension_reason = ""

    def describe(self, external_id: str) -> dict[str, object]:
        with self.db.session() as session:
            return self._describe(self._get(session, external_id))

    @staticmethod
    def _describe(user: EndUser) -> dict[str, object]:
        until = aware(user.throttled_until)
        return {"user": user.external_id, "tier": user.tier, "strikes": user.strikes,
                "throttled_until": until.isoformat() if until else None,
                "suspended": user.suspended_at is not None,
                "suspension_reason": user.suspension_reason or None}

    @staticmethod
    def _get(session: Session, external_id: str) -> EndUser:
        user = session.scalar(select(EndUser).where(EndUser.external_id == external_id))
        if user is None:
            user = EndUser(external_id=external_id,
                           tier=Tier.BASIC.value, strikes=0, suspension_reason="")
            session.add(user)
            session.flush()
        return user

    @staticmethod
    def _forgive_old_strikes(user: EndUser) -> None:
        last = aware(user.last_strike_at)
        if user.suspended_at is None and last and _now() - last > STRIKE_WINDOW:
            user.strikes = 0

    @staticmethod
    def _consequences(user: EndUser) -> Standing:
        if user.strikes >= SUSPEND_AT:
            user.suspended_at = _now()
            user.suspension_reason = (f"{user.strikes} blocked attempts within "
                                      f"{STRIKE_WINDOW.days} days")
            return Standing(user.strikes, user.tier, suspended=True,
                            warning="this user is now suspended")
        warning = None
        if user.strikes >= THROTTLE_AT:
            user.throttled_until = _now() + THROTTLE_FOR
            warning = (f"repeated blocked attempts: this user is throttled; at {SUSPEND_AT} "
                       "strikes the account is suspended")
        elif user.strikes >= WARN_AT:
            warning = (f"warning: {user.strikes} blocked attempts; at {SUSPEND_AT} the account "
                       "is suspended")
        return Standing(user.strikes, user.tier, warning=warning,
                        throttled_until=aware(user.throttled_until))
