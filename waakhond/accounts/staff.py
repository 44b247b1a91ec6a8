"""Console accounts. Roles say what a person may do:

- ``reviewer``: queues, cases, decisions, and blurred previews revealed one at a time;
- ``child_safety``: also sees content in child safety cases (nobody else does, not even an
  admin: the fewest people possible look at suspected abuse);
- ``admin``: also manages accounts.

Five wrong passwords in a row lock an account for 15 minutes; the answer never says whether
the name or the password was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from waakhond.accounts.passwords import hash_secret, needs_rehash, verify_secret
from waakhond.store import Database
from waakhond.store.models import ConsoleSession, StaffAccount, aware

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    REVIEWER = "reviewer"
    CHILD_SAFETY = "child_safety"
    ADMIN = "admin"

    @classmethod
    def parse(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - {role.value for role in cls})
        if unknown or not values:
            raise AccountError(f"unknown or missing roles {unknown}; use: "
                               f"{', '.join(role.value for role in cls)}")
        return sorted(set(values))


class AccountError(ValueError):
    """The account cannot be created or changed as asked; the message says why."""


class LoginFailed(Exception):
    """Wrong name or password, a locked or a disabled account: deliberately one message."""


@dataclass(frozen=True)
class Account:
    account_id: int
    username: str
    roles: frozenset[str]

    def has(self, role: Role) -> bool:
        return role.value in self.roles

    @property
    def reviewer(self) -> str:
        """How decisions and the audit log name this person."""
        return f"account:{self.account_id} ({self.username})"


def _account(row: StaffAccount) -> Account:
    return Account(row.id, row.username, frozenset(row.roles))


def _sign_out(session: Session, account_id: int) -> None:
    """A new password or a disabled account ends every session the account had."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.account_id == account_id))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, username: str, password: str, roles: list[str]) -> Account:
        username = username.strip()
        if not username or len(username) > 80:
            raise AccountError("a username has 1 to 80 characters")
        check_password(password)
        with self.db.session() as session:
            if session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)):
                raise AccountError(f"an account {username!r} exists already")
            row = StaffAccount(username=username, password_hash=hash_secret(password),
                               roles=Role.parse(roles))
            session.add(row)
            session.flush()
            return _account(row)

    def authenticate(self, username: str, password: str,
                     now: datetime | None = None) -> Account:
        now = now or datetime.now(UTC)
        with self.db.session() as session:
            row = session.scalar(select(StaffAccount).where(
                StaffAccount.username == username.strip()).with_for_update())
            locked = row is not None and (aware(row.locked_until) or now) > now
            matches = verify_secret(row.password_hash if row else None, password)
            if row is not None and not matches and not locked:
                self._count_failure(row, now)  # committed: the raise comes after the block
            signed_in = row is not None and matches and not locked and row.active
            if signed_in:
                row.failed_logins, row.last_login_at = 0, now
                if needs_rehash(row.password_hash):
                    row.password_hash = hash_secret(password)
                account = _account(row)
        if not signed_in:
            raise LoginFailed("wrong username or password, or the account is locked")
        return account

    @staticmethod
    def _count_failure(row: StaffAccount, now: datetime) -> None:
        row.failed_logins += 1
        if row.failed_logins >= LOCK_AFTER:
            row.locked_until, row.failed_logins = now + LOCK_FOR, 0

    def get(self, account_id: int) -> Account | None:
        with self.db.session() as session:
            row = session.get(StaffAccount, account_id)
            return _account(row) if row is not None and row.active else None

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        with self.db.session() as session:
            row = self._row(session, username)
            row.password_hash = hash_secret(password)
            _sign_out(session, row.id)

    def set_active(self, username: str, active: bool) -> None:
        with self.db.session() as session:
            row = self._row(session, username)
            row.active = active
            _sign_out(session, row.id)

    def list(self) -> list[dict[str, object]]:
        with self.db.session() as session:
            return [{"username": row.username, "roles": row.roles, "active": row.active,
                     "last_login_at": aware(row.last_login_at).isoformat()
                     if row.last_login_at else None}
                    for row in session.scalars(select(StaffAccount).order_by(
                        StaffAccount.username))]

    @staticmethod
    def _row(session: Session, username: str) -> StaffAccount:
        row = session.scalar(select(StaffAccount).where(StaffAccount.username == username))
        if row is None:
            raise AccountError(f"no account {username!r}")
        return row
