"""Each caller's own Twilio queue is deleted once the call has ended (services/twilio_queues.py,
worker.delete_spent_queues); Twilio's REST port is faked at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call
from queue_app.services import agenda, twilio_queues

from ..factories import make_org, make_queue
from .test_dispatch import make_call


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


class QueueRest:
    """Deletes queues; `failing` maps a queue SID to the error Twilio answers for it."""

    def __init__(self, failing: dict[str, Exception] | None = None) -> None:
        self.failing = failing or {}
        self.deleted: list[str] = []

    def delete_queue(self, queue_sid: str) -> None:
        if queue_sid in self.failing:
            raise self.failing[queue_sid]
        self.deleted.append(queue_sid)


def calls_in(now: datetime, *states: str) -> list[str]:
    with db.transaction() as session:
        queue = make_queue(session, make_org(session))
        sids = [make_call(session, queue, now, state=state).call_sid for state in states]
    return sids


def kept_queues() -> dict[str, str | None]:
    with db.transaction() as session:
        return {sid: queue for sid, queue in session.execute(select(Call.call_sid, Call.twilio_queue_sid))}


def test_an_ended_calls_queue_is_deleted_and_a_waiting_ones_kept(ctx: None, clock: ManualClock) -> None:
    ended, abandoned, waiting = calls_in(clock.now(), "completed", "abandoned", "waiting")
    for n, sid in enumerate((ended, abandoned, waiting)):
        twilio_queues.remember(sid, f"QU{n:032x}")
        twilio_queues.remember(sid, "QUretried")  # a retried action names the same queue: no change
    assert agenda.read(clock.now(), 60).spent_queues

    rest = QueueRest()
    assert worker.delete_spent_queues(rest) == 0  # type: ignore[arg-type]
    assert rest.deleted == [f"QU{0:032x}", f"QU{1:032x}"]
    assert kept_queues() == {ended: None, abandoned: None, waiting: f"QU{2:032x}"}
    assert not agenda.read(clock.now(), 60).spent_queues
    assert worker.delete_spent_queues(rest) == 0  # type: ignore[arg-type]
    assert len(rest.deleted) == 2


def test_a_queue_twilio_no_longer_has_counts_as_deleted_and_a_failure_is_tried_again(
    ctx: None, clock: ManualClock
) -> None:
    gone, failing = calls_in(clock.now(), "completed", "completed")
    twilio_queues.remember(gone, "QUgone")
    twilio_queues.remember(failing, "QUfailing")
    rest = QueueRest(
        {
            "QUgone": TwilioRestException(404, "http://x", "Not found", code=20404),
            "QUfailing": TwilioRestException(500, "http://x", "Internal error", code=20500),
        }
    )
    assert worker.delete_spent_queues(rest) == 1  # type: ignore[arg-type]
    assert kept_queues() == {gone: None, failing: "QUfailing"}
    assert agenda.read(clock.now(), 60).spent_queues  # the next round tries again
    rest.failing.clear()
    assert worker.delete_spent_queues(rest) == 0  # type: ignore[arg-type]
    assert rest.deleted == ["QUfailing"]


def test_nothing_is_remembered_without_a_call_or_a_queue(ctx: None, clock: ManualClock) -> None:
    (sid,) = calls_in(clock.now(), "waiting")
    twilio_queues.remember(sid, "")
    twilio_queues.remember("", "QU1")
    twilio_queues.remember("CAunknown", "QU1")
    assert kept_queues() == {sid: None}
