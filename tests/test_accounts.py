"""Console accounts and sessions (on SQLite and PostgreSQL), and the console's web security
over HTTP: CSRF on every POST, the login form's own CSRF cookie, cookie flags, no open
redirect after login, security headers, and content only for cases and roles that allow it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from waakhond.accounts import AccountError, Accounts, LoginFailed, Sessions
from waakhond.accounts.sessions import IDLE_TIMEOUT
from waakhond.accounts.staff import LOCK_AFTER, LOCK_FOR
from waakhond.store import Database

PASSWORD = "a long test password"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def accounts(db_url: str) -> Accounts:
    return Accounts(Database(db_url))


def test_passwords_are_stored_as_argon2id_hashes(accounts: Accounts) -> None:
    accounts.create("rita", PASSWORD, ["reviewer"])
    from sqlalchemy import select

    from waakhond.store.models import StaffAccount

    with accounts.db.session() as session:
        stored = session.scalar(select(StaffAccount.password_hash))
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.authenticate("rita", PASSWORD).username == "rita"


def test_weak_passwords_unknown_roles_and_duplicates_are_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="12 characters"):
        accounts.create("rita", "short", ["reviewer"])
    with pytest.raises(AccountError, match="unknown or missing roles"):
        accounts.create("rita", PASSWORD, ["superuser"])
    accounts.create("rita", PASSWORD, ["reviewer"])
    with pytest.raises(AccountError, match="exists already"):
        accounts.create("rita", PASSWORD, ["reviewer"])


def test_wrong_passwords_lock_the_account_without_saying_so(accounts: Accounts) -> None:
    accounts.create("rita", PASSWORD, ["reviewer"])
    with pytest.raises(LoginFailed) as unknown:
        accounts.authenticate("nobody", PASSWORD, NOW)
    for _ in range(LOCK_AFTER):
        with pytest.raises(LoginFailed) as wrong:
            accounts.authenticate("rita", "not the password", NOW)
    assert str(unknown.value) == str(wrong.value)  # no hint which part was wrong
    with pytest.raises(LoginFailed):  # locked: even the right password fails
        accounts.authenticate("rita", PASSWORD, NOW + timedelta(minutes=1))
    assert accounts.authenticate("rita", PASSWORD, NOW + LOCK_FOR + timedelta(seconds=1))


def test_sessions_expire_when_idle_and_end_with_a_new_password(accounts: Accounts) -> None:
    account = accounts.create("rita", PASSWORD, ["reviewer"])
    sessions = Sessions(accounts.db)
    token = sessions.start(account, NOW)
    found = sessions.resolve(token, NOW + timedelta(minutes=5))
    assert found is not None and found.account.username == "rita"
    assert found.csrf_ok(found.csrf_token) and not found.csrf_ok("forged") \
        and not found.csrf_ok(None)
    assert sessions.resolve(token, NOW + timedelta(minutes=5) + IDLE_TIMEOUT * 2) is None
    assert sessions.resolve(token, NOW + timedelta(minutes=6)) is None  # ended, not revived
    second = sessions.start(account, NOW)
    accounts.set_password("rita", "another long password")
    assert sessions.resolve(second, NOW) is None
    third = sessions.start(account, NOW)
    accounts.set_active("rita", False)
    assert sessions.resolve(third, NOW) is None
    with pytest.raises(LoginFailed):
        accounts.authenticate("rita", "another long password", NOW)


def _signed_in(client: TestClient, username: str = "rita") -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/console/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/console/login", data={
        "username": username, "password": PASSWORD, "login_csrf": login_csrf,
        "next": "https://evil.example/console"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"  # never off-site
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    queues = client.get("/console")
    return re.search(r'name="csrf-token" content="([^"]+)"', queues.text).group(1)  # type: ignore[union-attr]


def test_the_console_needs_a_login_and_csrf_on_every_post(client: TestClient) -> None:
    Accounts(client.gateway.decisions.db).create("rita", PASSWORD, ["reviewer"])  # type: ignore[attr-defined]
    first = client.get("/console/cases/case_x", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/console/login")
    no_cookie = client.post("/console/login", data={"username": "rita", "password": PASSWORD,
                                                    "login_csrf": "guess"})
    assert no_cookie.status_code == 403
    csrf = _signed_in(client)
    assert client.post("/console/claim", data={"csrf": "forged"}).status_code == 403
    assert client.post("/console/claim", data={}).status_code == 403
    empty = client.post("/console/claim", data={"csrf": csrf}, follow_redirects=False)
    assert empty.headers["location"].startswith("/console?empty=")
    page = client.get("/console")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 200
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_wrong_logins_get_one_answer(client: TestClient) -> None:
    Accounts(client.gateway.decisions.db).create("rita", PASSWORD, ["reviewer"])  # type: ignore[attr-defined]
    page = client.get("/console/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answers = [client.post("/console/login", data={"username": name, "password": password,
                                                   "login_csrf": login_csrf})
               for name, password in (("rita", "wrong password!"), ("nobody", PASSWORD))]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert answers[0].text == answers[1].text


def test_previews_are_only_for_items_of_the_case(client: TestClient) -> None:
    Accounts(client.gateway.decisions.db).create("rita", PASSWORD, ["reviewer"])  # type: ignore[attr-defined]
    _signed_in(client)
    assert client.get("/console/cases/case_x/preview/1").status_code == 403
    assert client.get("/console/cases/case_x").status_code == 404
