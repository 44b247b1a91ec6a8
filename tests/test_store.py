"""Migrations: a fresh database, one made before migrations existed, and the schema the
migrations build matching the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from waakhond.store import Database
from waakhond.store.db import alembic_config, head_revision
from waakhond.store.models import Bank, BankChange, BankEntry, Base, MatchFeedback


def revision(url: str) -> str | None:
    with create_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_a_fresh_database_gets_every_table_at_the_newest_revision(db_url):
    Database(db_url)
    assert revision(db_url) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(create_engine(db_url)).get_table_names())


def test_the_migrations_build_exactly_the_schema_of_the_models(db_url):
    database = Database(db_url)
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_database_from_before_migrations_is_recognised_and_upgraded(db_url):
    # The previous release created the hash bank tables directly.
    legacy = [Bank.__table__, BankEntry.__table__, BankChange.__table__, MatchFeedback.__table__]
    Base.metadata.create_all(create_engine(db_url), tables=legacy)
    Database(db_url)
    assert revision(db_url) == head_revision()
    assert "decisions" in inspect(create_engine(db_url)).get_table_names()


def test_the_migrations_go_down_and_up_again(db_url):
    database = Database(db_url)
    with database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert revision(db_url) is None
    Database(db_url)
    assert revision(db_url) == head_revision()


def test_a_database_server_keeps_the_configured_pool_of_connections(db_url, monkeypatch):
    monkeypatch.setenv("WAAKHOND_DATABASE_POOL_SIZE", "7")
    database = Database(db_url)
    if database.engine.dialect.name != "sqlite":  # SQLite is a file: no pool to size
        assert database.engine.pool.size() == 7  # type: ignore[attr-defined]


def test_a_bad_pool_size_is_refused_with_the_setting_named(monkeypatch):
    monkeypatch.setenv("WAAKHOND_DATABASE_POOL_SIZE", "lots")
    with pytest.raises(ValueError, match="WAAKHOND_DATABASE_POOL_SIZE"):
        Database("postgresql+psycopg://nobody@127.0.0.1:1/never-reached")
