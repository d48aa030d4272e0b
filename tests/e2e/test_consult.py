"""Consult-then-transfer through the emulator's conference, in virtual time (services/consult.py).

Anna answers a caller in her browser, starts a consult with a colleague's mobile and then connects
the caller, goes back to them, or finds the colleague busy, not answering or hanging up; or the
caller hangs up while she consults. The caller hears hold music meanwhile; Anna hears why she is back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, OperatorStatus, Transfer
from queue_app.services import consult, offers, operators
from queue_app.sim import CallerScript, ClientDevice, Emulator, PhoneNumber
from queue_app.sim.emulator import CallHandle
from queue_app.sim.transport import ConnectFailure, FormData, Transport, WebhookResponse
from queue_app.telephony.rest import TwilioRest

from .scenario import answered_during_welcome, make_switchboard

CALLER = "+46701234567"
COLLEAGUE = "+46701112233"


def call_row(call_sid: str) -> Call:
    with db.transaction() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        assert call is not None
        session.expunge(call)
        return call


def the_transfer() -> Transfer:
    with db.transaction() as session:
        transfer = session.scalars(select(Transfer).order_by(Transfer.id.desc())).first()
        assert transfer is not None
        session.expunge(transfer)
        return transfer


def operator_state(user_id: int) -> str:
    with db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        return status.state if status else "offline"


class Consult:
    """Anna on a call with a caller, able to consult, connect and return as the console would."""

    def __init__(
        self, app: Flask, clock: ManualClock, emulator: Emulator, number: Callable[[str], str], **opts: object
    ) -> None:
        self.app, self.clock, self.emulator = app, clock, emulator
        with app.app_context():
            self.board = make_switchboard(("op_anna",), **opts.get("queue", {}))  # type: ignore[arg-type]
            self.anna = self.board.operators["op_anna"]
            operators.log_in(self.anna, [self.board.queue_id], clock.now())
        emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
        script = CallerScript(patience=None, talk_for=opts.get("caller_talk_for"))  # type: ignore[arg-type]
        self.call = emulator.place_call(CALLER, number(self.board.number), script)
        assert self.call.wait_until(lambda: self.call.bridged_with is not None, timeout=120)
        self.operator_leg = self.call.bridged_with
        emulator.advance(offers.BRIDGE_SETTLE_SECONDS)  # a consult waits for a fresh bridge to settle
        with app.app_context():
            # With reordered callbacks the answer may be recorded a moment after the bridge.
            assert self.call.wait_until(lambda: call_row(self.call.sid).state == "connected", timeout=30)
            self.call_id = call_row(self.call.sid).id

    def start(self) -> None:
        with self.app.app_context():
            consult.start_consult(self.call_id, self.anna, COLLEAGUE, self.clock.now())
        self.emulator.tick_now()

    def connect(self) -> None:
        with self.app.app_context():
            consult.connect(self.call_id, self.anna, self.clock.now())
        self.emulator.tick_now()

    def back(self) -> None:
        with self.app.app_context():
            consult.return_to_caller(self.call_id, self.anna, self.clock.now())
        self.emulator.tick_now()

    def colleague_leg(self) -> CallHandle | None:
        legs = [c for c in self.emulator.calls if c.to == COLLEAGUE]
        return CallHandle(self.emulator, legs[-1]) if legs else None

    def conference_labels(self) -> set[str]:
        conferences = [c for c in self.emulator.state.conferences.values() if c.status != "completed"]
        return {p.label or "" for c in conferences for p in c.participants.values()}

    def transfer(self) -> Transfer:
        with self.app.app_context():
            return the_transfer()

    def held(self) -> bool:
        return any(p.hold for c in self.emulator.state.conferences.values() for p in c.participants.values())


def test_a_consult_then_connect_puts_the_caller_through_to_the_colleague(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    # The caller waits on hold with the queue's music; Anna and the colleague talk.
    assert anna.held()
    assert anna.call.heard_play_of("/twilio/audio/hold.wav")
    assert anna.conference_labels() == {"caller", "operator", "colleague-1"}
    anna.connect()
    emulator.advance(5)

    assert anna.conference_labels() == {"caller", "colleague-1"}
    assert not anna.held()
    assert anna.operator_leg is not None and anna.operator_leg.status == "completed"
    with app.app_context():
        row = call_row(anna.call.sid)
        assert (row.state, row.outcome_reason) == ("completed", "transferred")
        assert operator_state(anna.anna) in ("wrap_up", "available")
    assert anna.transfer().state == "connected"
    # The colleague hangs up: the caller's call ends with the conference.
    colleague = anna.colleague_leg()
    assert colleague is not None
    colleague.hang_up()
    emulator.advance(3)
    assert anna.call.status == "completed"
    assert emulator.errors == []


def test_a_consult_then_return_puts_anna_back_with_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    anna.back()
    emulator.advance(5)

    assert anna.conference_labels() == {"caller", "operator"}
    assert not anna.held()
    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status == "completed"
    transfer = anna.transfer()
    assert (transfer.state, transfer.recall_reason) == ("canceled", "returned")
    with app.app_context():
        assert call_row(anna.call.sid).state == "connected"
        assert operator_state(anna.anna) == "on_call"
    # Back to a plain call: when Anna hangs up, the caller's call ends.
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(3)
    assert anna.call.status == "completed"
    with app.app_context():
        assert call_row(anna.call.sid).state == "completed"
        assert operator_state(anna.anna) in ("wrap_up", "available")
    assert emulator.errors == []


def test_a_second_consult_after_a_return_dials_from_the_same_conference(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="busy"))
    anna = Consult(app, clock, emulator, incoming_number)
    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "recalled", timeout=60)
    emulator.advance(2)
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=2))

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)

    assert anna.conference_labels() == {"caller", "operator", "colleague-2"}
    assert anna.held()
    assert emulator.errors == []


def test_a_busy_colleague_sends_anna_back_to_the_caller_and_she_hears_why(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="busy"))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "recalled", timeout=60)
    emulator.advance(3)

    assert anna.transfer().recall_reason == "busy"
    assert not anna.held()
    assert anna.conference_labels() == {"caller", "operator"}
    assert anna.operator_leg is not None
    assert anna.operator_leg.heard_text_contains("Kollegan är upptagen. Du är tillbaka hos den som ringer.")
    with app.app_context():
        assert call_row(anna.call.sid).state == "connected"
    assert emulator.errors == []


def test_a_colleague_who_does_not_answer_sends_anna_back_to_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="no-answer"))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    emulator.advance(10)
    assert anna.transfer().state == "dialing"  # still ringing; the caller is on hold
    assert anna.held()
    assert anna.call.wait_until(lambda: anna.transfer().state == "recalled", timeout=60)
    emulator.advance(3)

    assert anna.transfer().recall_reason == "no_answer"
    assert not anna.held()
    assert anna.operator_leg is not None
    assert anna.operator_leg.heard_text_contains("svarar inte")
    assert emulator.errors == []


def test_a_caller_who_hangs_up_during_the_consult_ends_it(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    anna.call.hang_up()
    emulator.advance(5)

    transfer = anna.transfer()
    assert (transfer.state, transfer.recall_reason) == ("canceled", "caller_hung_up")
    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status == "completed"
    assert anna.operator_leg is not None and anna.operator_leg.status == "completed"
    with app.app_context():
        assert call_row(anna.call.sid).state == "completed"
        assert operator_state(anna.anna) in ("wrap_up", "available")
    assert emulator.errors == []


def test_a_caller_who_hangs_up_while_the_colleague_rings_stops_the_ringing(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=15))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.colleague_leg() is not None, timeout=60)
    anna.call.hang_up()
    emulator.advance(30)

    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status in ("canceled", "completed")
    assert anna.transfer().recall_reason == "caller_hung_up"
    assert anna.conference_labels() == set()
    assert emulator.errors == []


def test_a_colleague_who_hangs_up_during_the_consult_sends_anna_back(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(
        COLLEAGUE, PhoneNumber(mode="answer", answer_after=4, script=CallerScript(talk_for=10))
    )
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    assert anna.call.wait_until(lambda: anna.transfer().state == "recalled", timeout=30)
    emulator.advance(3)

    assert anna.transfer().recall_reason == "colleague_hung_up"
    assert not anna.held()
    assert anna.conference_labels() == {"caller", "operator"}
    assert anna.operator_leg is not None and anna.operator_leg.heard_text_contains("lade på")
    assert emulator.errors == []


def test_anna_hanging_up_during_the_consult_hands_the_caller_over(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(5)

    assert anna.transfer().state == "connected"
    assert anna.conference_labels() == {"caller", "colleague-1"}
    assert not anna.held()
    with app.app_context():
        assert call_row(anna.call.sid).outcome_reason == "transferred"
    assert emulator.errors == []


def test_anna_hanging_up_while_the_colleague_rings_puts_the_caller_first_in_the_queue(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=15))
    anna = Consult(app, clock, emulator, incoming_number)

    anna.start()
    assert anna.call.wait_until(lambda: anna.colleague_leg() is not None, timeout=60)
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(3)

    transfer = anna.transfer()
    assert (transfer.state, transfer.recall_reason) == ("recalled", "operator_left")
    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status in ("canceled", "completed")
    with app.app_context():
        row = call_row(anna.call.sid)
        assert row.state in ("waiting", "offered") and row.priority > 0
    assert anna.call.status == "in-progress"
    # The caller hears why they are off hold.
    assert anna.call.heard_text_contains("Vi kopplar dig tillbaka till växeln.")
    # After her wrap-up the caller comes back to Anna, the only operator.
    assert anna.call.wait_until(
        lambda: anna.call.bridged_with is not None and "op_anna" in anna.call.bridged_with.call.to, timeout=60
    )
    assert emulator.errors == []


def test_duplicated_and_late_callbacks_change_nothing_twice(
    app: Flask, clock: ManualClock, incoming_number: Callable[[str], str]
) -> None:
    from .conftest import bind_emulator

    # Every status and conference callback comes twice, late by up to two seconds.
    emulator = bind_emulator(app, clock, seed=3, duplicate_callbacks=True, callback_jitter=2.0)
    try:
        emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
        base = app.config["PUBLIC_BASE_URL"]
        emulator.add_number(
            "+46855501000",
            f"{base}/twilio/voice",
            status_callback=f"{base}/twilio/status",
            status_callback_events=("initiated", "ringing", "answered", "completed"),
        )
        anna = Consult(app, clock, emulator, lambda n: n)
        anna.start()
        assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
        anna.connect()
        emulator.advance(10)

        dialled = [c for c in emulator.calls if c.to == COLLEAGUE]
        assert len(dialled) == 1  # a duplicated join never dials the colleague twice
        assert anna.conference_labels() == {"caller", "colleague-1"}
        with app.app_context(), db.transaction() as session:
            kinds = [k for (k,) in session.execute(select(Transfer.state))]
            assert kinds == ["connected"]
        assert emulator.errors == []
    finally:
        app.extensions.pop("twilio_http_client", None)
        app.extensions.pop("koe_emulator", None)


# --- a caller is never left alone in the conference or on a dead line ------------------------------


def back_to_anna(anna: Consult) -> bool:
    """The recalled caller rings Anna again (after her wrap-up) and she answers."""
    return anna.call.wait_until(
        lambda: anna.call.bridged_with is not None and "op_anna" in anna.call.bridged_with.call.to, timeout=60
    )


def assert_recalled(
    anna: Consult, app: Flask, sentence: str = "Vi kopplar dig tillbaka till växeln."
) -> None:
    transfer = anna.transfer()
    assert (transfer.state, transfer.recall_reason) == ("recalled", "operator_left")
    assert anna.call.status == "in-progress"
    assert anna.call.heard_text_contains(sentence)
    assert anna.conference_labels() == set()  # nobody sits in a conference
    with app.app_context():
        row = call_row(anna.call.sid)
        assert row.state in ("waiting", "offered") and row.priority > 0


def test_anna_hanging_up_while_the_colleague_rings_tells_an_english_caller_why(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=15))
    anna = Consult(app, clock, emulator, incoming_number, queue={"language": "en"})

    anna.start()
    assert anna.call.wait_until(lambda: anna.colleague_leg() is not None, timeout=60)
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(3)

    assert_recalled(anna, app, "We are putting you back to the switchboard.")
    assert not anna.call.heard_text_contains("Vi kopplar dig")
    assert emulator.errors == []


def test_anna_hanging_up_after_going_back_before_the_worker_resumed_recalls_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)
    anna.start()
    assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
    assert anna.held()

    # "Back to the caller", and she hangs up before the worker's RESUME took the caller off hold and
    # made her leaving end the call.
    with app.app_context():
        consult.return_to_caller(anna.call_id, anna.anna, clock.now())
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(3)

    assert_recalled(anna, app)
    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status == "completed"
    assert back_to_anna(anna)
    assert emulator.errors == []


def test_anna_hanging_up_right_after_pressing_consult_recalls_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)

    # Consult pressed, and she hangs up before the worker moved her leg into the conference.
    with app.app_context():
        consult.start_consult(anna.call_id, anna.anna, COLLEAGUE, clock.now())
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    emulator.advance(3)

    assert_recalled(anna, app)
    assert anna.transfer().attempts == 0  # GATHER never ran
    assert anna.colleague_leg() is None  # nobody was dialled
    assert not any(c.friendly_name.startswith("koe-call-") for c in emulator.state.conferences.values())
    assert back_to_anna(anna)
    assert emulator.errors == []


def test_anna_hanging_up_while_the_worker_moves_her_leg_recalls_the_caller(
    app: Flask,
    clock: ManualClock,
    emulator: Emulator,
    incoming_number: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)
    leg = anna.operator_leg
    assert leg is not None
    moved = TwilioRest.redirect_call

    def gone_meanwhile(rest: TwilioRest, call_sid: str, url: str) -> str:
        # GATHER has claimed its step; Anna hangs up just before it moves her leg.
        if call_sid == leg.sid:
            emulator.hang_up(leg.call)
        return moved(rest, call_sid, url)

    monkeypatch.setattr(TwilioRest, "redirect_call", gone_meanwhile)
    anna.start()
    emulator.advance(3)

    assert anna.transfer().attempts == 1  # GATHER ran, and found her leg gone
    assert_recalled(anna, app)
    assert anna.colleague_leg() is None
    monkeypatch.undo()
    assert back_to_anna(anna)
    assert emulator.errors == []


class DropLegOnRequest:
    """A transport that hangs up `leg` as the emulator requests a URL containing `path`, so the leg
    ends while its TwiML is being fetched (the emulator then never runs that TwiML)."""

    def __init__(self, inner: Transport, emulator: Emulator, leg: CallHandle, path: str) -> None:
        self.inner, self.emulator, self.leg, self.path = inner, emulator, leg, path
        self.dropped_at: datetime | None = None

    def request(self, method: str, url: str, form: FormData, headers: Mapping[str, str]) -> WebhookResponse:
        if self.path in url and self.dropped_at is None:
            self.dropped_at = self.emulator.now()
            self.emulator.hang_up(self.leg.call)
        return self.inner.request(method, url, form, headers)


class LoseOperatorLeave:
    """A transport through which the conference's participant-leave callback for the operator never
    gets through (the app was unreachable for it, retry included)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.lost = 0

    def request(self, method: str, url: str, form: FormData, headers: Mapping[str, str]) -> WebhookResponse:
        fields = dict(form)
        if (
            fields.get("StatusCallbackEvent") == "participant-leave"
            and fields.get("ParticipantLabel") == "operator"
        ):
            self.lost += 1
            raise ConnectFailure("connection refused")
        return self.inner.request(method, url, form, headers)


def test_anna_dropping_on_her_way_into_the_conference_recalls_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    anna = Consult(app, clock, emulator, incoming_number)
    assert anna.operator_leg is not None
    # Her leg drops while it fetches its seat: she never joins, so no leave event ever comes.
    drop = DropLegOnRequest(emulator.webhooks.transport, emulator, anna.operator_leg, "/operator")
    emulator.webhooks.transport = drop

    anna.start()
    emulator.advance(1)
    assert drop.dropped_at is not None
    # DIAL found no operator: the call is recalled and nobody is dialled; the caller, already
    # seated in the conference, is moved by the safety net's check.
    assert (anna.transfer().state, anna.transfer().recall_reason) == ("recalled", "operator_left")
    assert anna.colleague_leg() is None
    assert anna.conference_labels() == {"caller"}
    emulator.advance(consult.ALONE_SECONDS + 1)

    assert_recalled(anna, app)
    assert anna.colleague_leg() is None
    assert back_to_anna(anna)
    assert emulator.errors == []


def test_a_caller_left_alone_in_the_conference_is_recalled_after_a_few_seconds(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=30))
    anna = Consult(app, clock, emulator, incoming_number)
    lose = LoseOperatorLeave(emulator.webhooks.transport)
    emulator.webhooks.transport = lose

    anna.start()
    assert anna.call.wait_until(lambda: anna.colleague_leg() is not None, timeout=30)
    emulator.advance(3 * consult.ALONE_SECONDS)  # the consult goes on; the worker looks now and then
    assert anna.transfer().state == "dialing"
    # Anna's leg drops while the colleague rings, and the app never hears of it.
    assert anna.operator_leg is not None
    anna.operator_leg.hang_up()
    dropped_at = emulator.now()
    emulator.advance(1)
    assert lose.lost == 2  # the callback and its retry
    assert anna.conference_labels() == {"caller"}  # alone, on hold, the colleague ringing

    assert anna.call.wait_until(lambda: anna.transfer().state == "recalled", timeout=30)
    # Within two looks of the worker (a deadline, not a timer per event).
    assert emulator.now() - dropped_at <= timedelta(seconds=2 * consult.ALONE_SECONDS + 1)
    emulator.advance(2)

    assert_recalled(anna, app)
    colleague = anna.colleague_leg()
    assert colleague is not None and colleague.status in ("canceled", "completed")
    assert back_to_anna(anna)
    assert {e.code for e in emulator.errors} <= {11205, 11200}  # only the lost callback


@pytest.mark.parametrize("seed", [1, 4])
@pytest.mark.parametrize("moment", ["after_consult_pressed", "while_ringing", "after_back_pressed"])
def test_the_recall_survives_duplicated_and_late_callbacks(
    app: Flask, clock: ManualClock, seed: int, moment: str
) -> None:
    from .conftest import bind_emulator

    # Every status and conference callback comes twice, late by up to two seconds.
    emulator = bind_emulator(app, clock, seed=seed, duplicate_callbacks=True, callback_jitter=2.0)
    try:
        answer_after = 20 if moment == "while_ringing" else 4
        emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=answer_after))
        base = app.config["PUBLIC_BASE_URL"]
        emulator.add_number(
            "+46855501000",
            f"{base}/twilio/voice",
            status_callback=f"{base}/twilio/status",
            status_callback_events=("initiated", "ringing", "answered", "completed"),
        )
        anna = Consult(app, clock, emulator, lambda n: n)
        if moment == "after_consult_pressed":
            with app.app_context():
                consult.start_consult(anna.call_id, anna.anna, COLLEAGUE, clock.now())
        elif moment == "while_ringing":
            anna.start()
            assert anna.call.wait_until(lambda: anna.colleague_leg() is not None, timeout=60)
        else:
            anna.start()
            assert anna.call.wait_until(lambda: anna.transfer().state == "consulting", timeout=60)
            with app.app_context():
                consult.return_to_caller(anna.call_id, anna.anna, clock.now())
        assert anna.operator_leg is not None
        anna.operator_leg.hang_up()
        emulator.advance(consult.ALONE_SECONDS + 4)

        assert_recalled(anna, app)
        # Moved once: the sentence is heard once, however often the callbacks came.
        assert [t for t in anna.call.heard_texts if "Vi kopplar dig" in t] == [
            "Vi kopplar dig tillbaka till växeln."
        ]
        assert back_to_anna(anna)
        assert emulator.errors == []
    finally:
        app.extensions.pop("twilio_http_client", None)
        app.extensions.pop("koe_emulator", None)


def test_a_consult_begun_before_the_welcome_ended_waits_for_the_bridge_then_holds_the_caller(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    """Anna's browser answers while the caller still hears the welcome: her leg waits for the caller
    to reach their queue. A consult she starts at once must not move her leg before the bridge has
    formed (the caller would be left in their queue): it begins when the bridge does."""
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="answer", answer_after=4))
    board, call = answered_during_welcome(app, clock, emulator, incoming_number)
    anna = board.operators["op_anna"]
    with app.app_context():
        consult.start_consult(call_row(call.sid).id, anna, COLLEAGUE, clock.now())
    emulator.tick_now()
    assert the_transfer_in(app).state == "dialing"
    assert call.status == "in-progress" and call.bridged_with is None

    with app.app_context():
        assert call.wait_until(lambda: the_transfer().state == "consulting", timeout=120)
    assert call.heard_text_contains("Vi öppnar klockan åtta")  # the welcome was not cut
    conferences = [c for c in emulator.state.conferences.values() if c.status != "completed"]
    assert {p.label for c in conferences for p in c.participants.values()} == {
        "caller",
        "operator",
        "colleague-1",
    }
    assert emulator.errors == []


def the_transfer_in(app: Flask) -> Transfer:
    with app.app_context():
        return the_transfer()
