"""Shared fixtures. ``db_url`` (and ``module_db_url``) runs a test twice: on SQLite (the
embedded default) and on the PostgreSQL that ./test starts on loopback
(WAAKHOND_TEST_POSTGRES_URL), each time on a fresh, empty database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from waakhond.api.app import create_app
from waakhond.config import GatewaySettings, ScreeningSettings
from waakhond.gateway.setup import build_gateway
from waakhond.screening import Screener
from waakhond.store import Database

POSTGRES_URL = os.environ.get("WAAKHOND_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _database(request.param, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_db_url(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, shared by a module's tests (a server that loads the models once)."""
    yield from _database(request.param, tmp_path_factory.mktemp("db"))


def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'w.db'}"
        return
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must test on PostgreSQL: run the suite with ./test")
        pytest.skip("no PostgreSQL: ./test starts one (WAAKHOND_TEST_POSTGRES_URL)")
    yield from _fresh_postgres_database(POSTGRES_URL)


def _fresh_postgres_database(admin_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            # FORCE: engines the test left open still hold pooled connections.
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The HTTP API in-process, without the image and prompt models (for the parts that do not
    screen anything: notices, cases, administration). ``client.gateway`` is behind it."""
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    settings = GatewaySettings()
    gateway = build_gateway(settings, db=Database(f"sqlite:///{tmp_path / 'w.db'}"),
                            screener=Screener(ScreeningSettings(), detectors=[]))
    with TestClient(create_app(gateway, settings)) as test_client:
        test_client.gateway = gateway  # type: ignore[attr-defined]
        yield test_client
