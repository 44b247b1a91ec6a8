"""The hash-chained audit log detects edited and removed entries, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from waakhond.audit import AuditLog
from waakhond.cli import main
from waakhond.store import Database


def filled(db_url: str, count: int = 5) -> tuple[Database, AuditLog]:
    db = Database(db_url)
    log = AuditLog(db)
    for n in range(count):
        log.append("moderator 1", "evidence.open", f"evidence:{n}", {"purpose": f"case {n}"})
    return db, log


def test_an_untouched_log_verifies(db_url):
    _, log = filled(db_url)
    result = log.verify()
    assert result.ok and result.entries == 5 and result.head == log.head()
    assert [e["seq"] for e in log.entries(2)] == [4, 5]


def test_an_edited_entry_is_detected(db_url):
    db, log = filled(db_url)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 3"))
    result = log.verify()
    assert not result.ok and "entry 3 was changed" in result.problem


def test_a_removed_entry_is_detected(db_url):
    db, log = filled(db_url)
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = log.verify()
    assert not result.ok and "entry 2 is missing" in result.problem


def test_a_rewritten_chain_after_a_removal_is_still_detected(db_url):
    db, log = filled(db_url)
    with db.engine.begin() as connection:  # remove the last entry and forge its successor
        connection.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    assert log.verify().ok  # cutting the tail leaves a valid chain: that is what head() is for
    published = log.head()
    log.append("x", "y")
    assert log.verify().ok and log.head() != published


def test_concurrent_writers_never_fork_the_chain(db_url):
    _, log = filled(db_url, 0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: log.append("w", "a", str(n)), range(20)))
    result = log.verify()
    assert result.ok and result.entries == 20


def test_audit_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    monkeypatch.delenv("WAAKHOND_DATABASE_URL", raising=False)
    assert main(["key", "create", "app", "--scope", "screen"]) == 0
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "show"]) == 0
    assert '"action": "key.create"' in capsys.readouterr().out
    db = Database()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET details = '{}'"))
    assert main(["audit", "verify"]) == 1
