"""Alembic, driven from the app: the same migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from . import PROJECT_ROOT
from .extensions import db


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


def autogenerate(message: str) -> None:
    command.revision(alembic_config(), message=message, autogenerate=True)


def current_revision() -> str | None:
    assert db.engine is not None
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
