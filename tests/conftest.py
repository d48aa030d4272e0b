"""Fixtures shared by every test.

Database tests run once on SQLite and, when TEST_DATABASE_URL is set, once more on PostgreSQL: the
`database_url` fixture is parametrised over the backends. Each xdist worker migrates its own
PostgreSQL database once (named from KOE_TEST_DB_PREFIX and the worker id) and empties it after
every test; each SQLite test gets a copy of a migrated template file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from queue_app import create_app
from queue_app.clock import ManualClock, utc
from queue_app.db import Base
from queue_app.extensions import db

from .factories import Personas, make_personas

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])
DB_PREFIX = os.environ.get("KOE_TEST_DB_PREFIX", "koe_test")
TEST_AUTH_TOKEN = "test-auth-token-0123456789"
TEST_ACCOUNT_SID = "AC" + "0" * 31 + "1"


def base_config(database_url: str, tmp_path: Path, clock: ManualClock) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "CLOCK": clock,
        "AUDIO_DIR": str(tmp_path / "audio"),
        "PUBLIC_BASE_URL": "http://koe.test",
        "TWILIO_EMULATOR": True,
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_API_BASE": "http://koe.test/emulator",
        "RUN_WORKER_IN_PROCESS": False,
        # Inline, so a test reads what a fetch wrote; tests/services/test_wait_writes.py covers behind.
        "WAIT_WRITE_BEHIND": False,
        "SERVER_NAME": "koe.test",
    }


def _migrate(database_url: str, tmp_path: Path) -> None:
    from queue_app import migrations

    app = create_app(base_config(database_url, tmp_path, ManualClock()))
    with app.app_context():
        migrations.upgrade("head")
    db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    path = folder / "template.sqlite3"
    _migrate(f"sqlite:///{path}", folder)
    return path


def _pg_admin_url() -> str:
    url = make_url(TEST_DATABASE_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"{DB_PREFIX}_{worker_id}".lower()
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg", database=name)
    rendered = url.render_as_string(hide_password=False)
    _migrate(rendered, tmp_path_factory.mktemp("pg-migrate"))
    yield rendered
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres() -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.transaction() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "koe.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def clock() -> ManualClock:
    # A Wednesday, 10:00 in Stockholm: within the demo company's opening hours.
    return ManualClock(utc("2026-11-25 09:00"))


@pytest.fixture
def app(database_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(database_url, tmp_path, clock))
    yield app
    if database_url.startswith("postgresql"):
        with app.app_context():
            _empty_postgres()
    db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def personas(app: Flask) -> Personas:
    """alice (admin, org A), bob (operator, org A), charlie (admin, org B: sees nothing of A)."""
    with app.app_context():
        return make_personas()
