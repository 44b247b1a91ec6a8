"""The database: SQLite under the data folder by default, any SQLAlchemy URL otherwise.

``WAAKHOND_DATABASE_URL`` picks the database (e.g. ``postgresql+psycopg://...``); without it,
``WAAKHOND_DATA`` (default ``./data``) holds ``waakhond.db``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from waakhond.config import data_folder


def default_database_url() -> str:
    if url := os.environ.get("WAAKHOND_DATABASE_URL"):
        return url
    return f"sqlite:///{data_folder() / 'waakhond.db'}"


# Connections a server process keeps open to a database server. SQLAlchemy's default keeps 5
# and opens (and closes again) up to 10 more on demand: under load every such connection is a
# new PostgreSQL process, which held notice intake under 300/s (bench/notices.py).
DEFAULT_POOL_SIZE = 20


def _pool_size() -> int:
    value = os.environ.get("WAAKHOND_DATABASE_POOL_SIZE", str(DEFAULT_POOL_SIZE))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WAAKHOND_DATABASE_POOL_SIZE must be a whole number >= 1, not {value!r}")
    return int(value)


def _sqlite_pragmas(connection: object, _record: object) -> None:
    # WAL lets the service read while a CLI import writes; the busy timeout makes a second
    # writer wait instead of failing; foreign keys are off by default in SQLite.
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


MIGRATIONS = Path(__file__).with_name("migrations")
# A database made before migrations existed (tables created directly): the newest table it has
# says which revision it is at.
_FIRST_TABLE_OF = (("0002", "api_keys"), ("0001", "banks"))
_ATTEMPTS = 3


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str | None:
    scripts = ScriptDirectory.from_config(alembic_config(None))  # type: ignore[arg-type]
    return scripts.get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic). Two processes starting together may
    race to create the tables; the loser tries again and finds them there."""
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
                if current == head_revision():
                    return
                _upgrade(connection)
            return
        except DBAPIError:
            if attempt == _ATTEMPTS - 1:
                raise


def _upgrade(connection: Connection) -> None:
    config = alembic_config(connection)
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables:
        for revision, table in _FIRST_TABLE_OF:
            if table in tables:
                command.stamp(config, revision)
                break
    command.upgrade(config, "head")


class Database:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_database_url()
        if self.url.startswith("sqlite"):
            self.engine: Engine = create_engine(self.url)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_size=_pool_size(), max_overflow=10)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session
