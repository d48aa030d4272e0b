"""The same Alembic migrations give the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect

from queue_app import migrations
from queue_app.extensions import db

from ..conftest import TEST_DATABASE_URL


def schema_of(url: str) -> dict[str, dict[str, object]]:
    """Tables, their columns (name, nullability, generic type), indexes and foreign keys."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        schema: dict[str, dict[str, object]] = {}
        for table in sorted(inspector.get_table_names()):
            if table == "alembic_version":
                continue
            columns = {c["name"]: (c["nullable"], _generic(c["type"])) for c in inspector.get_columns(table)}
            indexes = sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                # PostgreSQL also lists the index behind each UNIQUE constraint.
                if not i.get("duplicates_constraint")
            )
            uniques = sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table))
            foreign_keys = sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            )
            checks = sorted(c["name"] for c in inspector.get_check_constraints(table))
            pk = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
            schema[table] = {
                "columns": columns,
                "indexes": indexes,
                "uniques": uniques,
                "foreign_keys": foreign_keys,
                "checks": checks,
                "pk": pk,
            }
        return schema
    finally:
        engine.dispose()


def _generic(type_: object) -> str:
    name = type(type_).__name__.upper()
    aliases = {
        "BIGINT": "INTEGER",
        "DOUBLE_PRECISION": "FLOAT",
        "DOUBLE": "FLOAT",
        "REAL": "FLOAT",
        "TIMESTAMP": "DATETIME",
        "BOOLEAN": "BOOLEAN",
        "JSONB": "JSON",
    }
    return aliases.get(name, name)


def test_it_upgrades_an_empty_sqlite_database_to_every_model_table(tmp_path: Path) -> None:
    from queue_app.db import Base

    from ..conftest import _migrate

    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    _migrate(url, tmp_path)
    assert set(schema_of(url)) == {t.name for t in Base.metadata.sorted_tables}


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL")
def test_it_gives_sqlite_and_postgresql_the_same_schema(sqlite_template: Path, postgres_url: str) -> None:
    sqlite_schema = schema_of(f"sqlite:///{sqlite_template}")
    pg_schema = schema_of(postgres_url)
    assert sqlite_schema.keys() == pg_schema.keys()
    for table in sqlite_schema:
        assert sqlite_schema[table] == pg_schema[table], table


def test_it_leaves_nothing_for_autogenerate_to_add(app: Flask) -> None:
    """The models and the migrations agree: a new revision would be empty."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from queue_app.db import Base

    with app.app_context():
        assert db.engine is not None
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert migrations.current_revision() is not None
    assert os.path.exists(Path(migrations.__file__).parent.parent / "migrations" / "env.py")
