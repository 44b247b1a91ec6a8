"""Storage behind one repository layer: SQLAlchemy models on SQLite (default) or Postgres."""

from waakhond.store.db import Database, default_database_url

__all__ = ["Database", "default_database_url"]
