"""The waitUrl's position: exact at the head of the line, from a short-lived snapshot deeper down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import Connection, TextClause, event, select, text, update

from queue_app.clock import ManualClock
from queue_app.db import UTCDateTime, hot_rows
from queue_app.domain import prompts_text
from queue_app.extensions import db
from queue_app.models import Call, OperatorStatus, Organisation, QueueLogin
from queue_app.services import calls
from queue_app.services.calls import (
    EXACT_POSITIONS,
    LINE_TTL,
    OPERATORS_TTL,
    SNAPSHOT_TRUSTED_FROM,
    QueueFactsCache,
)

from ..factories import make_org, make_queue, make_user


def line_up(app: Flask, clock: ManualClock, size: int, **queue_settings: object) -> list[str]:
    """`size` callers waiting in one queue, one second apart; returns their CallSids in order."""
    now = clock.now()
    with app.app_context(), db.transaction() as session:
        org = make_org(session)
        queue = make_queue(session, org, **queue_settings)
        sids = [f"CAline{i:04d}" for i in range(size)]
        for i, sid in enumerate(sids):
            entered = now - timedelta(seconds=size - i)
            session.add(
                Call(
                    organisation_id=org.id,
                    queue_id=queue.id,
                    call_sid=sid,
                    from_number=f"+4670{i:07d}",
                    to_number="+46855512345",
                    state="waiting",
                    arrived_at=entered,
                    entered_queue_at=entered,
                )
            )
    return sids


def heard_position(app: Flask, sid: str, clock: ManualClock, cache: QueueFactsCache) -> int:
    """The position the caller hears now (a fresh status announcement is forced)."""
    with app.app_context():
        with db.transaction() as session:
            session.execute(update(Call).where(Call.call_sid == sid).values(announcement_state={}))
        answer = calls.next_wait(sid, clock.now(), cache)
    said = [u.text for u in answer.say]
    for n in range(1, 10_000):
        if prompts_text.position("sv", n) in said:
            return n
    raise AssertionError(f"no position in {said}")


def leave(app: Flask, *sids: str) -> None:
    with app.app_context(), db.transaction() as session:
        session.execute(update(Call).where(Call.call_sid.in_(sids)).values(state="connected"))


def test_it_says_exact_positions_at_the_head_and_deep_in_a_long_line(app: Flask, clock: ManualClock) -> None:
    sids = line_up(app, clock, EXACT_POSITIONS + 20)
    cache = QueueFactsCache()

    for place in (1, 2, EXACT_POSITIONS - 1, EXACT_POSITIONS, EXACT_POSITIONS + 1, EXACT_POSITIONS + 20):
        assert heard_position(app, sids[place - 1], clock, cache) == place


def test_it_keeps_the_head_exact_while_the_deep_snapshot_is_fresh(app: Flask, clock: ManualClock) -> None:
    sids = line_up(app, clock, EXACT_POSITIONS + 20)
    cache = QueueFactsCache()
    deep = sids[EXACT_POSITIONS + 9]
    assert heard_position(app, deep, clock, cache) == EXACT_POSITIONS + 10

    leave(app, *sids[:5])

    # The head is read on every announcement: exact at once.
    assert heard_position(app, sids[9], clock, cache) == 5
    # Deep down the line the snapshot may be LINE_TTL old, never older.
    assert heard_position(app, deep, clock, cache) == EXACT_POSITIONS + 10
    clock.advance(LINE_TTL.total_seconds())
    assert heard_position(app, deep, clock, cache) == EXACT_POSITIONS + 5


def test_it_puts_priority_callers_ahead_deep_in_the_line_too(app: Flask, clock: ManualClock) -> None:
    sids = line_up(app, clock, EXACT_POSITIONS + 20)
    with app.app_context(), db.transaction() as session:
        session.execute(update(Call).where(Call.call_sid == sids[-1]).values(priority=5))
    cache = QueueFactsCache()

    assert heard_position(app, sids[-1], clock, cache) == 1
    assert heard_position(app, sids[-2], clock, cache) == EXACT_POSITIONS + 20


def test_it_counts_nobody_ahead_in_another_queue(app: Flask, clock: ManualClock) -> None:
    line_up(app, clock, EXACT_POSITIONS + 5)
    with app.app_context(), db.transaction() as session:
        org = make_org(session, slug="other", name="Other AB")
        queue = make_queue(session, org)
        now = clock.now()
        session.add(
            Call(
                organisation_id=org.id,
                queue_id=queue.id,
                call_sid="CAalone",
                from_number="+46701234567",
                to_number="+46855599999",
                state="waiting",
                arrived_at=now,
                entered_queue_at=now,
            )
        )

    assert heard_position(app, "CAalone", clock, QueueFactsCache()) == 1


def test_it_survives_a_connection_the_server_dropped(
    app: Flask, clock: ManualClock, database_url: str
) -> None:
    """The hot engine has no pre-ping: a connection PostgreSQL closed fails once and is retried."""
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating server connections is a PostgreSQL test")
    sids = line_up(app, clock, 3)
    cache = QueueFactsCache()
    assert heard_position(app, sids[2], clock, cache) == 3  # the hot pool now holds a connection

    with app.app_context(), db.engine.connect() as connection:  # type: ignore[union-attr]
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    assert heard_position(app, sids[1], clock, cache) == 2


def statements_of(app: Flask, sid: str, clock: ManualClock, cache: QueueFactsCache) -> list[str]:
    """The SQL one forced announcement to `sid` sends (SQLite: the hot path goes through SQLAlchemy)."""
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    with app.app_context():
        if db.dialect != "sqlite":
            pytest.skip("on PostgreSQL the hot path talks to psycopg directly, unseen by SQLAlchemy's events")
        engine = db.hot_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            heard_position(app, sid, clock, cache)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    return sent


def test_a_caller_the_fresh_snapshot_places_deep_is_placed_without_reading_the_head(
    app: Flask, clock: ManualClock
) -> None:
    sids = line_up(app, clock, SNAPSHOT_TRUSTED_FROM + 30)
    cache = QueueFactsCache()
    assert heard_position(app, sids[-1], clock, cache) == SNAPSHOT_TRUSTED_FROM + 30  # loads the snapshot

    deep = statements_of(app, sids[SNAPSHOT_TRUSTED_FROM + 5], clock, cache)
    assert not any("LIMIT" in sql for sql in deep), "no read of the head for a caller 106th in line"
    near = statements_of(app, sids[SNAPSHOT_TRUSTED_FROM - 5], clock, cache)
    assert any("LIMIT" in sql for sql in near), "the 96th may belong at the head soon: read exactly"


def test_a_caller_whose_priority_rose_since_the_snapshot_is_placed_exactly(
    app: Flask, clock: ManualClock
) -> None:
    sids = line_up(app, clock, SNAPSHOT_TRUSTED_FROM + 30)
    cache = QueueFactsCache()
    assert heard_position(app, sids[-1], clock, cache) == SNAPSHOT_TRUSTED_FROM + 30
    with app.app_context(), db.transaction() as session:
        session.execute(update(Call).where(Call.call_sid == sids[-1]).values(priority=5))

    assert heard_position(app, sids[-1], clock, cache) == 1, "the snapshot has them at their old place"
    assert heard_position(app, sids[-2], clock, cache) == SNAPSHOT_TRUSTED_FROM + 29


def serving_counted(app: Flask, sid: str, clock: ManualClock, cache: QueueFactsCache) -> int:
    """The operators serving the queue, as a status announcement due now counts them."""
    heard_position(app, sid, clock, cache)
    with app.app_context(), db.reading() as session:
        state = session.scalars(select(Call.announcement_state).where(Call.call_sid == sid)).one()
    return int(state["serving_operators"])


def test_it_counts_the_queues_operators_at_most_a_second_ago(app: Flask, clock: ManualClock) -> None:
    [sid] = line_up(app, clock, 1)
    cache = QueueFactsCache()
    assert serving_counted(app, sid, clock, cache) == 0

    with app.app_context(), db.transaction() as session:
        call = session.scalars(select(Call).where(Call.call_sid == sid)).one()
        org = session.get(Organisation, call.organisation_id)
        assert org is not None
        user = make_user(session, org)
        session.add(OperatorStatus(user_id=user.id, organisation_id=user.organisation_id, state="available"))
        session.add(QueueLogin(user_id=user.id, queue_id=call.queue_id, logged_in_at=clock.now()))

    # Counted less than OPERATORS_TTL ago: not read again for every fetch.
    assert serving_counted(app, sid, clock, cache) == 0
    clock.advance(OPERATORS_TTL.total_seconds())
    assert serving_counted(app, sid, clock, cache) == 1
    # A cache of its own (another process) counts at once.
    assert serving_counted(app, sid, clock, QueueFactsCache()) == 1


def test_the_snapshot_the_database_keys_is_the_line_in_our_order(app: Flask, clock: ManualClock) -> None:
    """`_WHOLE_LINE` returns `_line_key`s, sorted, with no Python work per row: the same list as
    keying and sorting the line's rows, a raised priority and a caller with no entry time included."""
    sids = line_up(app, clock, 6)
    with app.app_context():
        with db.transaction() as session:
            session.execute(update(Call).where(Call.call_sid == sids[4]).values(priority=3))
            session.execute(update(Call).where(Call.call_sid == sids[1]).values(entered_queue_at=None))
            queue_id = session.scalars(select(Call.queue_id).where(Call.call_sid == sids[0])).one()
        with db.hot_connection() as connection:
            snapshot = db_rows(connection, calls._WHOLE_LINE, queue_id)
            whole = text(calls._QUEUE_LINE).columns(entered_queue_at=UTCDateTime())
            rows = db_rows(connection, whole, queue_id)
    expected = sorted(calls._line_key(p, e, i) for p, e, i in rows)
    assert snapshot == expected
    assert [type(key) for key in snapshot] == [tuple] * 6
    assert snapshot[0][0] == -3, "the priority caller first"
    assert snapshot[-1][1] == datetime.max.replace(tzinfo=UTC), "no entry time: last"


def db_rows(connection: Connection, statement: TextClause, queue_id: int) -> list[tuple[object, ...]]:
    return list(hot_rows(connection, statement, {"queue_id": queue_id}))  # type: ignore[arg-type]
