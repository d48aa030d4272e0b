"""The engine, the session and the column types shared by every model.

Services open their own short transaction with `db.transaction()`; request handlers that only read
use the request-scoped `db.session`, which is removed at the end of each request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, TextClause, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC: SQLite keeps no offset, PostgreSQL would convert."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def make_engine(url: str, *, writer: bool = False) -> Engine:
    """An engine; on SQLite a `writer` one starts every transaction with BEGIN IMMEDIATE.

    SQLite in WAL mode fails a deferred transaction that read, then tries to write after another
    connection committed (SQLITE_BUSY_SNAPSHOT). Taking the write lock at BEGIN serialises writers
    instead, which is what "on SQLite transactions are serialised" means for the dispatcher.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if writer:
            event.listen(engine, "connect", _sqlite_manual_transactions)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def make_hot_engine(url: str) -> Engine:
    """PostgreSQL engine for the waitUrl: autocommit, asynchronous commit, no pre-ping.

    Each statement is its own transaction, so a read costs one round trip and a write one more.
    `synchronous_commit=off` lets a write return before its WAL reaches the disk: a crash may lose
    the last fraction of a second of announcement bookkeeping (a caller hears a message twice), never
    corrupts anything (PostgreSQL manual, "Asynchronous Commit"). Without pre-ping a connection the
    server dropped fails once; `Database.hot_connection` callers retry on `connection_invalidated`.
    The session's time zone is UTC, so `hot_rows` can load timestamps as aware UTC in the driver.
    """
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c synchronous_commit=off -c timezone=UTC"},
        pool_size=2,
        max_overflow=8,
    )
    event.listen(engine, "connect", _load_timestamps_as_utc)
    return engine


def _load_timestamps_as_utc(dbapi_connection: Any, _record: Any) -> None:
    """Binary `timestamp` values (naive UTC, as UTCDateTime stores them) load as aware UTC, in C:
    the wire format is timestamptz's, whose loader gives the session's zone, UTC here. Only
    `hot_rows`' binary cursors use it; text results (SQLAlchemy's) are unchanged."""
    from psycopg.types.datetime import TimestamptzBinaryLoader

    dbapi_connection.adapters.register_loader("timestamp", TimestamptzBinaryLoader)


@cache
def _driver_sql(statement: TextClause) -> str:
    """The statement in psycopg's own parameter style (`%(name)s`), compiled once."""
    return str(statement.compile(dialect=postgresql.dialect()))


def hot_rows(
    connection: Connection, statement: TextClause, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """Run a read of the waitUrl and return its rows as tuples, in the statement's column order.

    On PostgreSQL through the driver itself (a prepared statement on the pooled psycopg
    connection, binary results): SQLAlchemy's result machinery costs more per fetch than the query.
    Timestamps come back as aware UTC, as `UTCDateTime` hands them out (`_load_timestamps_as_utc`),
    with no Python work per value: the 10,000-row line snapshot loads in a third of the time.
    Elsewhere (SQLite) through SQLAlchemy with the statement's declared column types.
    Statement-counting event listeners do not see the PostgreSQL path.
    """
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in connection.execute(statement, params)]
    return _on_driver(connection, statement, params, fetch=True)


def hot_write(
    connection: Connection, statement: TextClause, params: Mapping[str, Any], json: tuple[str, ...] = ()
) -> None:
    """A write of the waitUrl, as `hot_rows` reads: through psycopg on PostgreSQL, the parameters
    named in `json` sent as JSON; through SQLAlchemy (the statement's bind types) elsewhere."""
    if connection.dialect.name != "postgresql":
        connection.execute(statement, params)
        return
    _on_driver(connection, statement, _as_json(params, json), fetch=False)


def _as_json(params: Mapping[str, Any], json: tuple[str, ...]) -> dict[str, Any]:
    """The parameters for psycopg, those named in `json` wrapped to be sent as JSON."""
    from psycopg.types.json import Json

    return {key: Json(value) if key in json else value for key, value in params.items()}


def _on_driver(
    connection: Connection,
    statement: TextClause,
    params: Mapping[str, Any],
    *,
    fetch: bool,
) -> list[tuple[Any, ...]]:
    """Execute on the pooled psycopg connection (autocommit on the hot engine), binary results.
    A connection the server dropped is invalidated and raised as
    `DBAPIError(connection_invalidated=True)`, as `Connection.execute` would, so callers retry."""
    sql = _driver_sql(statement)
    driver: Any = connection.connection.driver_connection
    try:
        cursor = _hot_cursor(connection, driver)
        cursor.execute(sql, params, prepare=True)
        return list(cursor.fetchall()) if fetch else []
    except Exception as error:
        if not getattr(driver, "broken", False) and not getattr(driver, "closed", False):
            raise
        connection.invalidate(error)
        raise DBAPIError(sql, None, error, connection_invalidated=True) from error


def _hot_cursor(connection: Connection, driver: Any) -> Any:
    """One binary cursor per pooled psycopg connection, kept in the pool record's `info` (which
    SQLAlchemy clears when it replaces the connection): a cursor remembers the loaders of the last
    result's columns, and a new one per statement cost ~40 µs, a third of the waitUrl's read."""
    info = connection.connection.info
    cursor = info.get(_HOT_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not driver:
        cursor = info[_HOT_CURSOR] = driver.cursor(binary=True)
    return cursor


_HOT_CURSOR = "koe.hot_cursor"


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN instead of pysqlite's implicit one.
    dbapi_connection.isolation_level = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the pages read while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.writer_engine: Engine | None = None
        self.hot_engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] = sessionmaker(expire_on_commit=False)
        self.session = scoped_session(sessionmaker())
        # PostgreSQL's hot connections between uses (`hot_connection`); list.pop and append are
        # atomic, so threads share it without a lock.
        self._idle_hot: list[Connection] = []
        # Those a forked child inherited: the parent's sessions, never used nor closed here.
        self._inherited_hot: list[Connection] = []
        os.register_at_fork(after_in_child=self._forget_hot_connections)

    def configure(self, url: str) -> None:
        self.dispose()
        self.engine = make_engine(url)
        sqlite = url.startswith("sqlite")
        self.writer_engine = make_engine(url, writer=True) if sqlite else self.engine
        # SQLite: the reader engine, whose pysqlite connection begins a deferred transaction only
        # before a write, so a lone UPDATE never meets SQLITE_BUSY_SNAPSHOT.
        self.hot_engine = self.engine if sqlite else make_hot_engine(url)
        self.sessionmaker.configure(bind=self.writer_engine)
        self.session.remove()
        self.session.configure(bind=self.engine)

    @property
    def dialect(self) -> str:
        assert self.engine is not None, "database not configured"
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception."""
        with self.sessionmaker.begin() as session:
            yield session

    @contextmanager
    def hot_connection(self) -> Iterator[Connection]:
        """A connection for the hot path, one statement a use.

        PostgreSQL (autocommit, so no transaction to end or reset): kept checked out of the pool
        between uses, on a stack this process's threads share. A pool checkout and check-in cost a
        music-only waitUrl fetch ~45 µs of its ~210 in the request (~25 µs in a tight loop). A
        connection the server dropped is invalidated by `_on_driver`, and reconnects on its next use.
        SQLite: the reading engine's pool, and a commit ends the deferred transaction a write began.
        """
        engine = self.hot_engine
        assert engine is not None, "database not configured"
        if engine is self.engine:
            with engine.connect() as connection:
                yield connection
                connection.commit()
            return
        connection = self._take_hot(engine)
        try:
            yield connection
        finally:
            self._idle_hot.append(connection)

    def _take_hot(self, engine: Engine) -> Connection:
        while True:
            try:
                connection = self._idle_hot.pop()
            except IndexError:
                return engine.connect()
            if connection.engine is engine and not connection.closed:
                return connection
            connection.close()  # of an engine `configure` replaced

    def _close_hot_connections(self) -> None:
        while self._idle_hot:
            self._idle_hot.pop().close()

    def _forget_hot_connections(self) -> None:
        self._inherited_hot += self._idle_hot
        self._idle_hot = []

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads, on the reading engine: on SQLite it takes no write lock
        (no BEGIN IMMEDIATE), so a look at what is due neither waits for nor blocks a writer."""
        assert self.engine is not None, "database not configured"
        with Session(self.engine) as session:
            yield session

    def dispose(self) -> None:
        self.session.remove()
        self._close_hot_connections()
        for engine in {self.engine, self.writer_engine, self.hot_engine} - {None}:
            engine.dispose()  # type: ignore[union-attr]


def utcnow() -> datetime:
    """Only for column defaults of bookkeeping fields; domain code takes `now` as an argument."""
    return datetime.now(UTC)
