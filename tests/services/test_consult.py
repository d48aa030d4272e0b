"""Consult-then-transfer on real SQL (services/consult.py): each step claimed once, and duplicated,
late or reordered callbacks changing nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, OperatorStatus, Queue, Transfer
from queue_app.services import consult, operators
from queue_app.services.consult import ConsultError, Step

from ..factories import make_org, make_queue
from .test_dispatch import make_call, make_operator

COLLEAGUE = "+46701112233"
CONF = "CF" + "a" * 32


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def connected(now: datetime, **fields: object) -> tuple[int, int]:
    """A call answered by an operator who is on it: (call id, user id)."""
    with db.transaction() as session:
        org = make_org(session)
        queue = make_queue(session, org, wrap_up_seconds=10)
        user = make_operator(session, org, queue, client_identity="op_x", plan="pro")
        qid, uid = queue.id, user.id
    operators.log_in(uid, [qid], now)
    with db.transaction() as session:
        queue = session.get_one(Queue, qid)
        answered = {"state": "connected", "answered_by_id": uid, "answered_at": now}
        call = make_call(session, queue, now, **(answered | fields))
        status = session.get_one(OperatorStatus, uid)
        status.state, status.current_call_id = "on_call", call.id
        return call.id, uid


def transfer() -> Transfer:
    with db.transaction() as session:
        row = session.scalars(select(Transfer).order_by(Transfer.id.desc())).first()
        assert row is not None
        session.expunge(row)
        return row


def steps(now: datetime) -> list[Step]:
    return [s.step for s in consult.claim_due(now)]


def in_conference(call_id: int, now: datetime) -> None:
    """GATHER done and the caller joined: DIAL due."""
    assert steps(now) == [Step.GATHER]
    assert consult.record_conference_event(call_id, "participant-join", "operator", CONF, now) is False
    assert consult.record_conference_event(call_id, "participant-join", "caller", CONF, now) is True


def test_a_consult_is_gathered_then_dialled_once_even_if_the_join_comes_twice(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)

    planned = consult.claim_due(now)
    again = consult.record_conference_event(call_id, "participant-join", "caller", CONF, now)

    assert [p.step for p in planned] == [Step.DIAL]
    assert planned[0].conference_sid == CONF and planned[0].to_number == COLLEAGUE
    assert planned[0].hold_url == "/twilio/audio/hold.wav"
    assert again is False and steps(now) == []


def test_the_colleagues_answer_then_a_duplicate_and_a_late_ringing_change_nothing(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)

    for status in ("in-progress", "in-progress", "ringing"):
        assert consult.record_colleague_status(tid, status, "CA1", now) is False

    assert transfer().state == "consulting"
    assert transfer().consult_call_sid == "CA1"


def test_a_busy_colleague_recalls_once_and_a_reordered_answer_after_it_is_ignored(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)

    assert consult.record_colleague_status(tid, "busy", "CA1", now) is True
    assert consult.record_colleague_status(tid, "busy", "CA1", now) is False
    assert consult.record_colleague_status(tid, "in-progress", "CA1", now) is False

    row = transfer()
    assert (row.state, row.recall_reason) == ("recalled", "busy")
    [resume] = consult.claim_due(now)
    assert (resume.step, resume.reason) == (Step.RESUME, "busy")
    assert steps(now) == []


def test_a_completed_leg_before_its_answer_means_the_colleague_hung_up(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)

    assert consult.record_colleague_status(tid, "completed", "CA1", now) is True
    consult.record_colleague_status(tid, "in-progress", "CA1", now)

    assert (transfer().state, transfer().recall_reason) == ("recalled", "colleague_hung_up")


def test_connect_needs_an_answer_then_completes_the_call_and_starts_wrap_up(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)

    with pytest.raises(ConsultError) as early:
        consult.connect(call_id, user_id, now)
    consult.record_colleague_status(tid, "in-progress", "CA1", now)
    consult.connect(call_id, user_id, now)

    assert early.value.code == "not_answered"
    with db.transaction() as session:
        call = session.get_one(Call, call_id)
        assert (call.state, call.outcome_reason) == ("completed", "transferred")
        assert session.get_one(OperatorStatus, user_id).state == "wrap_up"
    assert steps(now) == [Step.CONNECT]
    # The colleague's later hang-up changes nothing: the call is theirs now.
    assert consult.record_colleague_status(tid, "completed", "CA1", now) is False
    assert transfer().state == "connected"


def test_a_second_consult_is_refused_while_one_is_going_on(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)

    with pytest.raises(ConsultError) as error:
        consult.start_consult(call_id, user_id, COLLEAGUE, now)

    assert error.value.code == "consult_active"


def test_return_before_the_worker_moved_anything_needs_no_step(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)

    consult.return_to_caller(call_id, user_id, now)

    assert (transfer().state, transfer().recall_reason) == ("canceled", "returned")
    assert steps(now) == []
    with pytest.raises(ConsultError) as error:
        consult.return_to_caller(call_id, user_id, now)
    assert error.value.code == "no_consult"


def test_a_caller_gone_before_the_dial_is_never_dialled_for(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    with db.transaction() as session:
        session.get_one(Call, call_id).state = "completed"

    assert steps(now) == []
    assert (transfer().state, transfer().recall_reason) == ("canceled", "caller_hung_up")


def test_a_failed_dial_recalls_with_failed_and_resumes(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)

    consult.step_failed(tid, Step.DIAL, "TwilioRestException: 21211", now)

    assert (transfer().state, transfer().recall_reason) == ("recalled", "failed")
    assert steps(now) == [Step.RESUME]


def test_a_callback_call_cannot_be_consulted_about(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now, callback_number="+46701234567")

    with pytest.raises(ConsultError) as error:
        consult.start_consult(call_id, user_id, COLLEAGUE, now)

    assert error.value.code == "not_possible"


def leave(
    call_id: int, label: str, now: datetime, ends: bool = False, reason: str = "participant-hung-up"
) -> bool:
    return consult.record_conference_event(
        call_id, "participant-leave", label, CONF, now, ends_conference=ends, reason_left=reason
    )


def test_an_operator_leaving_after_going_back_recalls_the_caller_once(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)
    consult.record_colleague_status(tid, "in-progress", "CA1", now)
    consult.return_to_caller(call_id, user_id, now)

    # Everyone left because the conference ended (the caller hung up): nobody to recall.
    assert leave(call_id, "operator", now, reason="conference-ended") is False
    assert (transfer().state, transfer().recall_reason) == ("canceled", "returned")
    # She left before RESUME made her leaving end the call: the caller would stay alone.
    assert leave(call_id, "operator", now) is True
    assert leave(call_id, "operator", now) is False  # a duplicate

    assert (transfer().state, transfer().recall_reason) == ("recalled", "operator_left")
    with db.transaction() as session:
        call = session.get_one(Call, call_id)
        assert call.state in ("waiting", "offered") and call.priority > 0
        assert session.get_one(OperatorStatus, user_id).state == "wrap_up"
    [resume] = [s for s in consult.claim_due(now) if s.step is Step.RESUME]
    assert resume.redirect_path == f"/twilio/consult/{tid}/recall"
    assert resume.colleague_sid == "CA1"


def test_an_operator_leaving_a_plain_call_again_ends_it_without_a_recall(
    ctx: None, clock: ManualClock
) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    consult.claim_due(now)
    consult.return_to_caller(call_id, user_id, now)

    # RESUME ran: her leaving ends the conference and with it the caller's call.
    assert leave(call_id, "operator", now, ends=True) is False

    assert (transfer().state, transfer().recall_reason) == ("canceled", "returned")
    with db.transaction() as session:
        assert session.get_one(Call, call_id).state == "connected"


def test_the_safety_net_looks_once_at_its_deadline_not_before(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)  # the caller joined: look in ALONE_SECONDS
    assert steps(now) == [Step.DIAL]
    # A late duplicate of the join does not put the deadline off.
    later = now + timedelta(seconds=consult.ALONE_SECONDS - 1)
    assert consult.record_conference_event(call_id, "participant-join", "caller", CONF, later) is False

    assert steps(later) == []
    deadline = now + timedelta(seconds=consult.ALONE_SECONDS)
    with db.transaction() as session:
        assert consult.next_step(session) == deadline
    [check] = consult.claim_due(deadline)
    assert (check.step, check.conference_name) == (Step.CHECK, f"koe-call-{call_id}")
    assert steps(deadline) == []


def test_a_failed_check_looks_again_later(ctx: None, clock: ManualClock) -> None:
    now = clock.now()
    call_id, user_id = connected(now)
    tid = consult.start_consult(call_id, user_id, COLLEAGUE, now)
    in_conference(call_id, now)
    deadline = now + timedelta(seconds=consult.ALONE_SECONDS)
    assert [s.step for s in consult.claim_due(deadline)] == [Step.DIAL, Step.CHECK]

    consult.step_failed(tid, Step.CHECK, "TwilioRestException: 20003", deadline)

    assert transfer().state == "dialing"  # a failed look changes nothing else
    again = deadline + timedelta(seconds=consult.ALONE_SECONDS)
    assert steps(again - timedelta(seconds=1)) == []
    assert steps(again) == [Step.CHECK]
