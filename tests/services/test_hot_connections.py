"""The hot path's connections (`Database.hot_connection`): on PostgreSQL kept between uses, shared by
threads, closed by `dispose`, never reused across a fork; on SQLite a pooled one per use."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import text

from queue_app.db import hot_rows
from queue_app.extensions import db


def one(connection: object) -> int:
    [(value,)] = hot_rows(connection, text("SELECT 1"), {})  # type: ignore[arg-type]
    return int(value)


def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's hot path uses the reading engine's pool")


def test_on_postgresql_a_use_takes_the_connection_the_last_one_left(app: Flask, database_url: str) -> None:
    postgres_only(database_url)
    with app.app_context():
        with db.hot_connection() as first:
            assert one(first) == 1
        with db.hot_connection() as again:
            assert again is first
            with db.hot_connection() as nested:
                assert nested is not first, "a connection is used by one at a time"
                assert one(nested) == 1
        pool = db.hot_engine.pool  # type: ignore[union-attr]
        assert pool.checkedout() == 2  # type: ignore[attr-defined]


def test_threads_share_the_kept_connections(app: Flask, database_url: str) -> None:
    postgres_only(database_url)
    seen: list[object] = []

    def use() -> None:
        with app.app_context(), db.hot_connection() as connection:
            assert one(connection) == 1
            seen.append(connection)

    use()
    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert seen[0] is seen[1], "a thread takes what another left, so short-lived threads open nothing"


def test_dispose_closes_the_kept_connections(app: Flask, database_url: str) -> None:
    postgres_only(database_url)
    with app.app_context(), db.hot_connection() as connection:
        assert one(connection) == 1
    db.dispose()
    assert connection.closed
    with app.app_context(), db.hot_connection() as fresh:
        assert fresh is not connection and one(fresh) == 1


def test_a_forked_child_never_uses_its_parents_connections(app: Flask, database_url: str) -> None:
    """What `os.register_at_fork` runs in the child: the parent's sessions are set aside, unclosed
    (closing would end the parent's session too)."""
    postgres_only(database_url)
    with app.app_context(), db.hot_connection() as parents:
        assert one(parents) == 1
    db._forget_hot_connections()
    with app.app_context(), db.hot_connection() as childs:
        assert childs is not parents and one(childs) == 1
    assert not parents.closed


def test_on_sqlite_each_use_has_its_own_pooled_connection(app: Flask, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite path")
    with app.app_context():
        with db.hot_connection() as first:
            assert one(first) == 1
        with db.hot_connection() as second:
            assert one(second) == 1
        assert second is not first and first.closed
