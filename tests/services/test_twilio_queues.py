"""Each caller's own Twilio queue is deleted once the call has ended (services/twilio_queues.py,
worker.delete_spent_queues), and one whose SID never reached us is found by its name
(worker.delete_leaked_queues); Twilio's REST port is faked at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call
from queue_app.services import agenda, twilio_queues
from queue_app.telephony.rest import ListedQueue

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


# --- queues whose SID never reached us ---------------------------------------------------------


class ListingRest(QueueRest):
    """Also lists the account's queues, as Twilio's `GET /Queues.json` would."""

    def __init__(self, listed: list[ListedQueue], failing: dict[str, Exception] | None = None) -> None:
        super().__init__(failing)
        self.listed = listed

    def queues(self) -> Iterator[ListedQueue]:
        yield from self.listed


def call_ids(now: datetime, *states: str) -> list[int]:
    with db.transaction() as session:
        queue = make_queue(session, make_org(session))
        return [make_call(session, queue, now, state=state).id for state in states]


def test_a_leaked_queue_is_deleted_once_its_call_is_over_and_it_is_old_and_empty(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    over, waiting, busy, young = call_ids(now, "completed", "waiting", "abandoned", "completed")
    old = now - twilio_queues.LEAK_AGE
    listed = [
        ListedQueue("QUover", f"koe-caller-{over}", 0, old),
        ListedQueue("QUwaiting", f"koe-caller-{waiting}", 0, old),  # bridged now: empty, not over
        ListedQueue("QUbusy", f"koe-caller-{busy}", 1, old),  # someone is still in it
        ListedQueue("QUyoung", f"koe-caller-{young}", 0, now - timedelta(minutes=59)),
        ListedQueue("QUstranger", f"koe-caller-{young + 1000}", 0, old),  # another deployment's?
        ListedQueue("QUnamed", "support", 0, old),
        ListedQueue("QUsuffix", f"koe-caller-{over}-x", 0, old),
        ListedQueue("QUundated", f"koe-caller-{over}", 0, None),
    ]
    rest = ListingRest(listed)
    assert worker.delete_leaked_queues(now, rest) == 1  # type: ignore[arg-type]
    assert rest.deleted == ["QUover"]


def test_a_leaked_queue_twilio_no_longer_has_counts_as_done_and_a_failed_list_deletes_nothing(
    ctx: None, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    now = clock.now()
    first, second = call_ids(now, "completed", "completed")
    old = now - twilio_queues.LEAK_AGE
    listed = [
        ListedQueue("QU1", f"koe-caller-{first}", 0, old),
        ListedQueue("QU2", f"koe-caller-{second}", 0, old),
    ]
    rest = ListingRest(listed, {"QU1": TwilioRestException(404, "http://x", "Not found", code=20404)})
    assert worker.delete_leaked_queues(now, rest) == 2  # type: ignore[arg-type]
    assert rest.deleted == ["QU2"]

    class Unreachable(ListingRest):
        def queues(self) -> Iterator[ListedQueue]:
            raise ConnectionError("api.twilio.com unreachable")

    assert worker.delete_leaked_queues(now, Unreachable(listed)) == 0  # type: ignore[arg-type]
    assert "could not list the Twilio queues" in caplog.text
