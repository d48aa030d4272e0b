"""How many SQL statements a dispatch round and a worker round cost: a regression guard.

Counted with SQLAlchemy's `before_cursor_execute` on both engines (reading and writing), so every
statement sent to the database counts, SQLite's `BEGIN IMMEDIATE` included (PostgreSQL's BEGIN is
sent by the driver itself and is not counted there). Counts, not wall-clock time: they are the same
on every machine, and a change that adds a query to the idle path fails here at once. When a count
changes on purpose, change the pin and say why in the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.services import dispatch

from .test_dispatch import FakeRest, _add_call, _queue_with_operators, call_state, operator_state

# (SQLite, PostgreSQL)
IDLE_DISPATCH = (1, 1)
# Which organisations; then under the lock (PostgreSQL's advisory lock, SQLite's BEGIN IMMEDIATE):
# operators, waiting calls, queue rules, fair's answered-today, missed offers; then the claims and rows,
# and the operator's device (the address their own leg rings: dispatch.offer_legs reads the user row,
# one more than when the caller was redirected, once per operator rung).
ONE_OFFER_DISPATCH = (14, 14)
IDLE_WORKER_ROUND = (1, 1)
# The agenda, then the closing sweep's look at the waiting callers' queue (with its organisation)
# and its closures; the queue has no schedule (a schedule adds its rules and exceptions).
BUSY_WORKER_ROUND = (3, 3)
# The agenda, the closing sweep, the dispatch round above, the leg's sid stored once Twilio made it
# (offers.leg_created, its own transaction after the REST request: SQLite's BEGIN IMMEDIATE, the offer
# group read, the update), and the agenda again for the deadlines. The agenda's new stray-legs fact is
# one more scalar subquery of its one statement, so idle and busy rounds cost what they did.
LEG_CREATED = (3, 2)
OFFERING_WORKER_ROUND = (
    1 + 2 + ONE_OFFER_DISPATCH[0] + LEG_CREATED[0] + 1,
    1 + 2 + ONE_OFFER_DISPATCH[1] + LEG_CREATED[1] + 1,
)


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engines = {db.engine, db.writer_engine} - {None}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def pin(pair: tuple[int, int], database_url: str) -> int:
    return pair[0] if database_url.startswith("sqlite") else pair[1]


def shown(seen: list[str]) -> str:
    return "\n".join(" ".join(s.split())[:160] for s in seen)


@pytest.fixture
def ctx(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRest]:
    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    with app.app_context():
        yield rest


def test_it_decides_an_idle_dispatch_round_in_one_statement(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    _queue_with_operators("fair", 2, now)
    with statements() as seen:
        assert dispatch.dispatch_round(now).redirects == []
    assert len(seen) == pin(IDLE_DISPATCH, database_url), shown(seen)


def test_it_offers_one_call_to_one_free_operator_in_a_fixed_number_of_statements(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    call_id = _add_call(qid, now)
    with statements() as seen:
        assert len(dispatch.dispatch_round(now).redirects) == 1
    assert (call_state(call_id), operator_state(anna)) == ("offered", "ringing")
    assert len(seen) == pin(ONE_OFFER_DISPATCH, database_url), shown(seen)


def test_it_runs_an_idle_worker_round_in_one_statement(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    _queue_with_operators("fair", 2, now)
    worker.run_pending(now)  # whatever logging in left for the worker
    with statements() as seen:
        assert worker.run_pending(now) is None
    assert len(seen) == pin(IDLE_WORKER_ROUND, database_url), shown(seen)


def test_it_takes_an_idle_rounds_next_deadline_from_the_same_statement(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    _add_call(qid, now)
    worker.run_pending(now)  # offers the call: its offer's deadline is the next one
    assert operator_state(anna) == "ringing"
    with statements() as seen:
        assert worker.run_pending(now) == now + timedelta(seconds=20 + 15)  # ring timeout + grace
    assert len(seen) == pin(IDLE_WORKER_ROUND, database_url), shown(seen)


def test_it_runs_a_round_with_callers_waiting_and_nobody_free_in_few_statements(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now)
    for _ in range(3):
        _add_call(qid, now)
    worker.run_pending(now)  # Anna rings for the first caller; two wait
    assert operator_state(anna) == "ringing"
    with statements() as seen:
        worker.run_pending(now)
    assert len(seen) == pin(BUSY_WORKER_ROUND, database_url), shown(seen)


def test_it_runs_a_round_that_offers_one_call_in_a_fixed_number_of_statements(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    now = clock.now()
    qid, (anna,) = _queue_with_operators("fair", 1, now, ring_timeout_seconds=20)
    call_id = _add_call(qid, now)
    with statements() as seen:
        assert worker.run_pending(now) == now + timedelta(seconds=20 + 15)
    assert (call_state(call_id), operator_state(anna)) == ("offered", "ringing")
    assert len(ctx.created) == 1
    assert len(seen) == pin(OFFERING_WORKER_ROUND, database_url), shown(seen)
