"""API keys, rate limits, end-user strikes and tiers, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from waakhond.core import Action
from waakhond.gateway import access
from waakhond.gateway.access import (
    KNOWN_KEY_SECONDS,
    SUSPEND_AT,
    AccessDenied,
    ApiKeys,
    Caller,
    EndUsers,
    RateLimiter,
    Scope,
    Tier,
)
from waakhond.store import Database
from waakhond.store.models import ApiKey, EndUser


@pytest.fixture
def db(db_url) -> Database:
    return Database(db_url)


def test_only_the_hash_of_a_key_is_stored(db):
    key = ApiKeys(db).create("platform", ["generate", "screen"])
    with db.session() as session:
        stored = session.query(ApiKey).one()
    secret = key.token.split("_", 2)[2]
    assert secret not in (stored.secret_sha256, stored.prefix)
    caller = ApiKeys(db).authenticate(key.token)
    assert caller.scopes == {"generate", "screen"}


@pytest.mark.parametrize("token", ["", "nonsense", "wk_abc", "wk_deadbeef_wrong", "sk-123"])
def test_bad_tokens_are_refused(db, token):
    ApiKeys(db).create("platform", ["screen"])
    with pytest.raises(AccessDenied) as caught:
        ApiKeys(db).authenticate(token)
    assert caught.value.status == 401


def test_a_key_revoked_here_stops_at_once(db):
    keys = ApiKeys(db)
    made = keys.create("platform", ["screen"])
    keys.authenticate(made.token)  # remembered
    assert keys.revoke(made.key_id)
    with pytest.raises(AccessDenied, match="revoked"):
        keys.authenticate(made.token)


def test_a_key_revoked_by_another_process_stops_within_the_memory_time(db, monkeypatch):
    server, cli = ApiKeys(db), ApiKeys(db)
    made = server.create("platform", ["screen"])
    now = [1000.0]
    monkeypatch.setattr(access.time, "monotonic", lambda: now[0])
    server.authenticate(made.token)
    assert cli.revoke(made.key_id)

    now[0] += KNOWN_KEY_SECONDS - 0.1
    assert server.authenticate(made.token).key_id == made.key_id  # still remembered
    now[0] += 0.2
    with pytest.raises(AccessDenied, match="revoked"):
        server.authenticate(made.token)


def test_unknown_scopes_are_refused(db):
    with pytest.raises(ValueError, match="scopes"):
        ApiKeys(db).create("x", ["everything"])


def test_scopes_are_enforced_and_admin_has_them_all():
    screen_only = Caller(1, "x", frozenset({"screen"}), 10)
    screen_only.require(Scope.SCREEN)
    with pytest.raises(AccessDenied):
        screen_only.require(Scope.GENERATE)
    Caller(2, "y", frozenset({"admin"}), 10).require(Scope.AUDIT)


def test_the_rate_limit_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for _ in range(60):  # one a second on average, bursts of 60
        limiter.take("key:1", 60)
    with pytest.raises(AccessDenied) as caught:
        limiter.take("key:1", 60)
    assert caught.value.status == 429
    limiter.take("key:2", 60)  # another bucket is not affected
    now[0] += 1.0
    limiter.take("key:1", 60)


def test_strikes_warn_then_throttle_then_suspend(db):
    users = EndUsers(db)
    standings = [users.strike("u1", Action.BLOCK) for _ in range(SUSPEND_AT)]
    assert standings[0].warning is None
    assert "warning" in standings[1].warning
    assert standings[2].throttled_until is not None
    assert standings[-1].suspended
    with pytest.raises(AccessDenied) as caught:
        users.admit("u1")
    assert caught.value.code == "user_suspended"
    users.set("u1", reinstate=True)
    assert users.admit("u1").strikes == 0


def test_a_report_worthy_attempt_counts_more(db):
    standing = EndUsers(db).strike("u2", Action.BLOCK_AND_REPORT)
    assert standing.strikes == 3 and standing.throttled_until is not None


def test_old_strikes_are_forgiven(db):
    users = EndUsers(db)
    users.strike("u3", Action.BLOCK)
    with db.session() as session:
        user = session.query(EndUser).one()
        user.last_strike_at = datetime.now(UTC) - timedelta(days=31)
    assert users.admit("u3").strikes == 0


def test_tiers(db):
    users = EndUsers(db)
    assert users.tier("u4") is Tier.BASIC and users.tier(None) is Tier.BASIC
    users.set("u4", tier="verified")
    assert users.tier("u4") is Tier.VERIFIED
    with pytest.raises(ValueError, match="tier"):
        users.set("u4", tier="gold")
