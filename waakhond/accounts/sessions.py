"""Console sessions. The browser holds a random token in an HttpOnly, SameSite=Strict cookie;
we keep its SHA-256, so a copy of the database signs nobody in. Each session has its own CSRF
token, which every form and script sends back (the synchronizer-token pattern). A session
ends after 30 idle minutes or 12 hours, whichever comes first, and at logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from waakhond.accounts.staff import Account
from waakhond.store import Database
from waakhond.store.models import ConsoleSession, StaffAccount, aware

IDLE_TIMEOUT = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)


@dataclass(frozen=True)
class SessionInfo:
    account: Account
    csrf_token: str

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and secrets.compare_digest(self.csrf_token, sent or "")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, account: Account, now: datetime | None = None) -> str:
        """A new session for a person who just logged in; returns the cookie's token."""
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        with self.db.session() as session:
            session.add(ConsoleSession(token_sha256=_digest(token), account_id=account.account_id,
                                       csrf_token=secrets.token_urlsafe(32), created_at=now,
                                       last_seen_at=now))
        return token

    def resolve(self, token: str | None, now: datetime | None = None) -> SessionInfo | None:
        """The live session this token opens, touched; None when it has expired or ended."""
        if not token:
            return None
        now = now or datetime.now(UTC)
        with self.db.session() as session:
            found = session.execute(
                select(ConsoleSession, StaffAccount)
                .join(StaffAccount, StaffAccount.id == ConsoleSession.account_id)
                .where(ConsoleSession.token_sha256 == _digest(token))).first()
            if found is None:
                return None
            row, account = found
            expired = (now - aware(row.last_seen_at) > IDLE_TIMEOUT
                       or now - aware(row.created_at) > MAX_AGE)
            if expired or not account.active:
                session.delete(row)
                return None
            row.last_seen_at = now
            return SessionInfo(Account(account.id, account.username, frozenset(account.roles)),
                               row.csrf_token)

    def end(self, token: str) -> None:
        with self.db.session() as session:
            session.execute(delete(ConsoleSession).where(
                ConsoleSession.token_sha256 == _digest(token)))
