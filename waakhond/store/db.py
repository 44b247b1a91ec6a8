"""The database: SQLite under the data folder by default, any SQLAlchemy URL otherwise.

``WAAKHOND_DATABASE_URL`` picks the database (e.g. ``postgresql+psycopg://...``); without it,
``WAAKHOND_DATA`` (default ``./data``) holds ``waakhond.db``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from waakhond.config import data_folder
from waakhond.store.models import Base


def default_database_url() -> str:
    if url := os.environ.get("WAAKHOND_DATABASE_URL"):
        return url
    return f"sqlite:///{data_folder() / 'waakhond.db'}"


def _sqlite_pragmas(connection: object, _record: object) -> None:
    # WAL lets the service read while a CLI import writes; the busy timeout makes a second
    # writer wait instead of failing; foreign keys are off by default in SQLite.
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_database_url()
        self.engine: Engine = create_engine(self.url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session
