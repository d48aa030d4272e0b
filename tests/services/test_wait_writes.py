"""What waiting callers heard, written behind the waitUrl's answers (`services.wait_writes`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call
from queue_app.services import calls
from queue_app.services.calls import QueueFactsCache
from queue_app.services.wait_writes import WaitWrites

from .test_waiting import line_up


class Recorder:
    """A batch writer that remembers each batch and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.wrote = threading.Event()
        self.fail = False

    def __call__(self, batch: Sequence[dict[str, Any]]) -> None:
        if self.fail:
            raise RuntimeError("database down")
        self.batches.append(list(batch))
        self.wrote.set()


def write(call_id: int, version: int = 0, heard: str = "x", estimate: int | None = 60) -> dict[str, Any]:
    return {"id": call_id, "version": version, "state": {"heard": heard}, "estimate": estimate}


def row(call_id: int, version: int = 0, estimate: int | None = None) -> dict[str, Any]:
    return {"id": call_id, "version": version, "announcement_state": {}, "first_estimate_seconds": estimate}


def never_on_its_own() -> tuple[Recorder, WaitWrites]:
    recorder = Recorder()
    return recorder, WaitWrites(recorder, batch=10_000, every=3600)


def test_one_flush_writes_everything_pending_in_one_batch_the_newest_write_per_call() -> None:
    recorder, writes = never_on_its_own()
    writes.put(write(1, heard="first"))
    writes.put(write(2))
    writes.put(write(1, heard="second"))

    assert writes.flush() == 2
    assert [(w["id"], w["state"]) for w in recorder.batches[0]] == [
        (1, {"heard": "second"}),
        (2, {"heard": "x"}),
    ]
    assert writes.pending() == 0
    assert writes.flush() == 0


def test_a_batch_is_written_in_the_order_of_the_calls_ids() -> None:
    """Two processes' batches then lock the rows they share in one order: no deadlock."""
    recorder, writes = never_on_its_own()
    for call_id in (7, 3, 9, 1):
        writes.put(write(call_id))
    writes.flush()
    assert [w["id"] for w in recorder.batches[0]] == [1, 3, 7, 9]


def test_the_process_reads_its_own_pending_write_over_the_row() -> None:
    _, writes = never_on_its_own()
    writes.put(write(1, version=3, heard="position", estimate=120))

    seen = writes.overlay(row(1, version=3))
    assert seen["announcement_state"] == {"heard": "position"}
    assert seen["first_estimate_seconds"] == 120
    # The first estimate is the first one ever made: a stored one stays.
    assert writes.overlay(row(1, version=3, estimate=90))["first_estimate_seconds"] == 90
    # Another call's row, or this call changed by the dispatcher since: the row as read.
    assert writes.overlay(row(2, version=3))["announcement_state"] == {}
    assert writes.overlay(row(1, version=4))["announcement_state"] == {}


def test_a_failed_batch_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    recorder, writes = never_on_its_own()
    recorder.fail = True
    writes.put(write(1))

    assert writes.flush() == 1
    assert "announcement bookkeeping not written calls=1" in caplog.text
    assert writes.pending() == 0


def test_a_write_handed_over_during_a_flush_stays_for_the_next() -> None:
    writes: WaitWrites

    def replace_while_writing(batch: Sequence[dict[str, Any]]) -> None:
        if batch[0]["state"] == {"heard": "old"}:
            writes.put(write(1, heard="new"))

    writes = WaitWrites(replace_while_writing, batch=10_000, every=3600)
    writes.put(write(1, heard="old"))
    writes.flush()

    assert writes.pending() == 1
    assert writes.overlay(row(1))["announcement_state"] == {"heard": "new"}


def test_a_full_batch_wakes_the_writer_at_once() -> None:
    recorder = Recorder()
    writes = WaitWrites(recorder, batch=3, every=3600)
    for call_id in (1, 2):
        writes.put(write(call_id))
    assert not recorder.batches  # below a batch, with an hour to gather: nothing yet
    writes.put(write(3))

    assert recorder.wrote.wait(10), "the writer thread did not write a full batch"
    assert sorted(w["id"] for w in recorder.batches[0]) == [1, 2, 3]


def test_the_writer_writes_what_gathered_without_being_asked() -> None:
    recorder = Recorder()
    writes = WaitWrites(recorder, batch=10_000, every=0)
    writes.put(write(7))

    assert recorder.wrote.wait(10), "the writer thread did not write a pending write"
    assert recorder.batches == [[write(7)]]


# --- through the database ---------------------------------------------------------------------------


def stored(app: Flask, sid: str) -> tuple[dict[str, Any], int | None]:
    with app.app_context(), db.reading() as session:
        state, estimate = session.execute(
            select(Call.announcement_state, Call.first_estimate_seconds).where(Call.call_sid == sid)
        ).one()
    return dict(state or {}), estimate


def test_the_first_fetch_is_written_at_once_and_later_ones_behind(app: Flask, clock: ManualClock) -> None:
    [sid] = line_up(app, clock, 1)
    cache = QueueFactsCache()
    writes = WaitWrites(calls.write_heard, batch=10_000, every=3600)

    with app.app_context():
        first = calls.next_wait(sid, clock.now(), cache, writes)
        # Joining the Twilio queue is what lets the dispatcher bridge the caller: never held back.
        assert stored(app, sid)[0].get("joined_at")
        assert writes.pending() == 0
        assert first.say

        clock.advance(600)  # the periodic message and the status are due again
        second = calls.next_wait(sid, clock.now(), cache, writes)
        assert second.say
        assert writes.pending() == 1
        before = stored(app, sid)[0]

        # This process knows what the caller just heard, though the row does not say it yet.
        third = calls.next_wait(sid, clock.now(), cache, writes)
        assert not third.say

        assert writes.flush() == 1
    after = stored(app, sid)[0]
    assert after["periodic_at"] != before["periodic_at"]
    assert after["periodic_at"] == clock.now().isoformat()


def test_a_pending_write_never_undoes_what_the_dispatcher_wrote(app: Flask, clock: ManualClock) -> None:
    [sid] = line_up(app, clock, 1)
    cache = QueueFactsCache()
    writes = WaitWrites(calls.write_heard, batch=10_000, every=3600)
    with app.app_context():
        calls.next_wait(sid, clock.now(), cache, writes)
        clock.advance(600)
        calls.next_wait(sid, clock.now(), cache, writes)
        assert writes.pending() == 1
        # Meanwhile the dispatcher changes the call (its version moves on) and its state.
        with db.transaction() as session:
            session.execute(
                update(Call)
                .where(Call.call_sid == sid)
                .values(announcement_state={"returned_to_queue": True}, version=Call.version + 1)
            )
        writes.flush()

    assert stored(app, sid)[0] == {"returned_to_queue": True}


def test_a_batch_of_many_callers_is_written_in_one_go(app: Flask, clock: ManualClock) -> None:
    sids = line_up(app, clock, 3)
    with app.app_context(), db.reading() as session:
        ids = {sid: call_id for sid, call_id in session.execute(select(Call.call_sid, Call.id))}
    batch = [write(ids[sid], heard=sid, estimate=30 * i) for i, sid in enumerate(sids)]
    with app.app_context():
        calls.write_heard(batch)

    for i, sid in enumerate(sids):
        assert stored(app, sid) == ({"heard": sid}, 30 * i)


def test_a_batch_skips_only_the_calls_that_moved_on_and_keeps_first_estimates(
    app: Flask, clock: ManualClock
) -> None:
    sids = line_up(app, clock, 3)
    with app.app_context(), db.transaction() as session:
        ids = {sid: call_id for sid, call_id in session.execute(select(Call.call_sid, Call.id))}
        session.execute(update(Call).where(Call.call_sid == sids[0]).values(first_estimate_seconds=90))
        session.execute(
            update(Call)
            .where(Call.call_sid == sids[1])
            .values(announcement_state={"bridging": True}, version=Call.version + 1)
        )
    # No estimate in any write of the batch: PostgreSQL gets an array of nulls.
    batch = [write(ids[sid], heard='å "quoted"', estimate=None) for sid in sids]
    with app.app_context():
        calls.write_heard(batch)

    assert stored(app, sids[0]) == ({"heard": 'å "quoted"'}, 90)
    assert stored(app, sids[1]) == ({"bridging": True}, None)
    assert stored(app, sids[2]) == ({"heard": 'å "quoted"'}, None)
