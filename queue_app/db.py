"""The engine, the session and the column types shared by every model.

Services open their own short transaction with `db.transaction()`; request handlers that only read
use the request-scoped `db.session`, which is removed at the end of each request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
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
    """
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c synchronous_commit=off"},
        pool_size=2,
        max_overflow=8,
    )


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
        """A connection for the hot path: one statement, one transaction (commit is a no-op on
        PostgreSQL's autocommit; on SQLite it ends the deferred transaction a write began)."""
        assert self.hot_engine is not None, "database not configured"
        with self.hot_engine.connect() as connection:
            yield connection
            connection.commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads, on the reading engine: on SQLite it takes no write lock
        (no BEGIN IMMEDIATE), so a look at what is due neither waits for nor blocks a writer."""
        assert self.engine is not None, "database not configured"
        with Session(self.engine) as session:
            yield session

    def dispose(self) -> None:
        self.session.remove()
        for engine in {self.engine, self.writer_engine, self.hot_engine} - {None}:
            engine.dispose()  # type: ignore[union-attr]


def utcnow() -> datetime:
    """Only for column defaults of bookkeeping fields; domain code takes `now` as an argument."""
    return datetime.now(UTC)
