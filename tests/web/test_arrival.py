"""A caller meets a closed, unstaffed or overflowing queue: the TwiML they get, through signed webhooks."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import (
    Call,
    CallEvent,
    Closure,
    OperatorStatus,
    Prompt,
    Queue,
    QueueLogin,
    Schedule,
    ScheduleRule,
)

from ..factories import Personas
from ..twilio_helpers import call_params, new_call_sid, signed_post, spoken_text, twiml_of, voice_params

BASE = "http://koe.test"
SATURDAY_NOON = utc("2026-11-28 11:00")  # 12:00 in Stockholm
MIDSOMMARAFTON = utc("2026-06-19 08:00")  # a Friday, 10:00 in Stockholm
CLOSED_SV = "Vi har stängt just nu. Välkommen att ringa igen under våra öppettider. Hej då."
CLOSED_EN = "We are closed at the moment. Please call again during our opening hours. Goodbye."


def configure(app: Flask, personas: Personas, **values: object) -> None:
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        for key, value in values.items():
            setattr(queue, key, value)


def office_hours(app: Flask, personas: Personas) -> None:
    """Weekdays 08-17, closed on public and de-facto holidays (Midsommarafton)."""
    with app.app_context(), db.transaction() as session:
        schedule = Schedule(
            organisation_id=personas.bob.organisation_id,
            name="Kontorstid",
            holiday_categories=["public", "de_facto"],
        )
        schedule.rules = [
            ScheduleRule(
                position=0,
                effect="open",
                rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
                starts=time(8),
                ends=time(17),
            )
        ]
        session.add(schedule)
        session.flush()
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        queue.schedule_id = schedule.id


def log_in_operator(app: Flask, personas: Personas, state: str = "available") -> None:
    with app.app_context(), db.transaction() as session:
        session.add(
            OperatorStatus(
                user_id=personas.bob.user_id, organisation_id=personas.bob.organisation_id, state=state
            )
        )
        session.add(
            QueueLogin(
                user_id=personas.bob.user_id,
                queue_id=personas.bob.queue_id,
                logged_in_at=utc("2026-01-01 00:00"),
            )
        )


def call_row(app: Flask, call_sid: str) -> Call:
    with app.app_context(), db.transaction() as session:
        return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


def call(client: FlaskClient, personas: Personas, sid: str | None = None, from_: str = "+46701234567"):  # type: ignore[no-untyped-def]
    return twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid, from_=from_)))


# --- closed -------------------------------------------------------------------------------------


def test_it_says_the_closing_message_outside_opening_hours_and_hangs_up(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    clock.set(SATURDAY_NOON)
    sid = new_call_sid()
    root = call(client, personas, sid)

    assert [c.tag for c in root] == ["Say", "Hangup"], "no welcome, no queue"
    assert spoken_text(root) == [CLOSED_SV]
    assert root[0].attrib == {"language": "sv-SE", "voice": "Polly.Astrid"}
    row = call_row(app, sid)
    assert (row.state, row.outcome_reason, row.ended_at) == ("closed", "outside_hours", clock.now())
    assert row.entered_queue_at is None
    with app.app_context(), db.transaction() as session:
        event = session.scalars(
            select(CallEvent).where(CallEvent.call_id == row.id, CallEvent.kind == "arrival_decided")
        ).one()
        assert event.data["outcome"] == "closed"


def test_it_enqueues_the_same_caller_within_opening_hours(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    clock.set(utc("2026-11-27 15:59"))  # Friday 16:59 in Stockholm
    assert [c.tag for c in call(client, personas)] == ["Say", "Enqueue"]


def test_it_says_the_closing_message_in_english_for_an_english_queue(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    configure(app, personas, language="en")
    clock.set(SATURDAY_NOON)
    root = call(client, personas)
    assert spoken_text(root) == [CLOSED_EN]
    assert root[0].attrib == {"language": "en-GB", "voice": "Polly.Amy"}


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("sv", "Vi har helgstängt i dag. Välkommen att ringa igen en vardag. Hej då."),
        ("en", "We are closed today for the holiday. Please call again on a working day. Goodbye."),
    ],
)
def test_it_says_the_holiday_message_on_midsommarafton(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, language: str, text: str
) -> None:
    office_hours(app, personas)
    configure(app, personas, language=language)
    clock.set(MIDSOMMARAFTON)
    sid = new_call_sid()
    assert spoken_text(call(client, personas, sid)) == [text]
    assert call_row(app, sid).outcome_reason == "holiday"


def test_it_speaks_a_temporary_closures_own_message(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    with app.app_context(), db.transaction() as session:
        session.add(
            Closure(
                organisation_id=personas.bob.organisation_id,
                all_queues=True,
                starts_at=clock.now() - timedelta(minutes=5),
                ends_at=clock.now() + timedelta(hours=2),
                reason="Brandövning",
                message="Vi har brandövning och är tillbaka klockan tolv.",
            )
        )
    sid = new_call_sid()
    root = call(client, personas, sid)
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert spoken_text(root) == ["Vi har brandövning och är tillbaka klockan tolv."]
    assert call_row(app, sid).outcome_reason == "closure"


def test_it_plays_the_queues_recorded_closing_prompt_before_the_organisations(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    org_id, queue_id = personas.bob.organisation_id, personas.bob.queue_id
    with app.app_context(), db.transaction() as session:
        session.add(
            Prompt(organisation_id=org_id, kind="closed_hours", language="sv", text="Organisationen.")
        )
        session.add(
            Prompt(
                organisation_id=org_id,
                queue_id=queue_id,
                kind="closed_hours",
                language="sv",
                audio_key="https://cdn.example/stangt.wav",
            )
        )
    clock.set(SATURDAY_NOON)
    root = call(client, personas)
    assert [c.tag for c in root] == ["Play", "Hangup"]
    assert root[0].text == "https://cdn.example/stangt.wav"


def test_it_forwards_a_closed_queue_to_its_alternative_number_with_the_callers_id(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    configure(app, personas, closed_action="forward", closed_forward_number="+46701112233")
    clock.set(SATURDAY_NOON)
    sid = new_call_sid()
    root = call(client, personas, sid)

    assert [c.tag for c in root] == ["Dial"], "our default text ends in goodbye: not before a forward"
    dial = root[0]
    assert dial.attrib["callerId"] == "+46701234567"
    assert dial.attrib["action"] == f"{BASE}/twilio/forward-result"
    assert [(n.tag, n.text) for n in dial] == [("Number", "+46701112233")]
    assert call_row(app, sid).state == "closed"


def test_it_says_the_closing_message_when_the_forward_number_is_missing(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    configure(app, personas, closed_action="forward", closed_forward_number=None)
    clock.set(SATURDAY_NOON)
    root = call(client, personas)
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert spoken_text(root) == [CLOSED_SV]


def test_it_answers_a_retried_webhook_with_the_same_closing(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    office_hours(app, personas)
    clock.set(SATURDAY_NOON)
    sid = new_call_sid()
    first = call(client, personas, sid)
    clock.advance(5)
    again = call(client, personas, sid)
    assert spoken_text(again) == spoken_text(first) == [CLOSED_SV]


@pytest.mark.parametrize(
    ("status", "tags"),
    [("no-answer", ["Say", "Hangup"]), ("busy", ["Say", "Hangup"]), ("completed", ["Hangup"])],
)
def test_it_ends_a_forward_nobody_took_with_the_closing_message(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, status: str, tags: list[str]
) -> None:
    office_hours(app, personas)
    configure(app, personas, closed_action="forward", closed_forward_number="+46701112233")
    clock.set(SATURDAY_NOON)
    sid = new_call_sid()
    call(client, personas, sid)
    root = twiml_of(signed_post(client, "/twilio/forward-result", call_params(sid, DialCallStatus=status)))
    assert [c.tag for c in root] == tags
    if status != "completed":
        assert spoken_text(root) == [CLOSED_SV]


# --- overflow -----------------------------------------------------------------------------------


def test_it_rejects_a_caller_as_busy_when_x_callers_wait(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    configure(app, personas, overflow_max_callers=2, overflow_action="busy")
    call(client, personas)
    call(client, personas)
    sid = new_call_sid()
    root = call(client, personas, sid)

    assert [(c.tag, c.attrib) for c in root] == [("Reject", {"reason": "busy"})], "Reject first: unanswered"
    row = call_row(app, sid)
    assert (row.state, row.outcome_reason) == ("overflowed", "overflow_callers")
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        assert (queue.overflow_active, queue.overflow_changed_at) == (True, clock.now())
    # Twilio reports the rejected call as busy; the call stays overflowed.
    signed_post(client, "/twilio/status", call_params(sid, CallStatus="busy", SequenceNumber="1"))
    assert call_row(app, sid).state == "overflowed"


def test_it_keeps_callers_already_waiting_and_reopens_with_hysteresis(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    configure(app, personas, overflow_max_callers=2, overflow_action="busy")
    first, second = new_call_sid(), new_call_sid()
    call(client, personas, first)
    call(client, personas, second)
    assert call(client, personas)[0].tag == "Reject"
    assert call_row(app, first).state == "waiting", "nobody already waiting is thrown out"

    signed_post(client, "/twilio/queue-result", call_params(first, QueueResult="hangup", QueueTime="30"))
    clock.advance(10)
    assert call(client, personas)[0].tag == "Reject", "1 waiting, but not yet a minute since it closed"
    clock.advance(60)
    assert call(client, personas)[-1].tag == "Enqueue"


def test_it_forwards_an_overflowing_queue_with_the_callers_number(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    configure(
        app,
        personas,
        overflow_max_callers=1,
        overflow_action="forward",
        overflow_forward_number="+4631123456",
    )
    call(client, personas)
    sid = new_call_sid()
    root = call(client, personas, sid, from_="+46709876543")
    assert [c.tag for c in root] == ["Dial"]
    assert root[0].attrib["callerId"] == "+46709876543"
    assert root[0].find("Number").text == "+4631123456"  # type: ignore[union-attr]
    assert call_row(app, sid).state == "overflowed"


def test_it_closes_on_the_longest_current_wait(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    configure(app, personas, overflow_max_wait_seconds=300, overflow_action="busy")
    call(client, personas)
    clock.advance(299)
    assert call(client, personas)[-1].tag == "Enqueue"
    clock.advance(1)
    sid = new_call_sid()
    assert call(client, personas, sid)[0].tag == "Reject"
    assert call_row(app, sid).outcome_reason == "overflow_wait"


# --- no operator --------------------------------------------------------------------------------


def test_it_forwards_when_no_operator_is_logged_in(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    configure(app, personas, no_operator_action="forward", no_operator_forward_number="+46705550000")
    sid = new_call_sid()
    root = call(client, personas, sid)
    assert [c.tag for c in root] == ["Dial"]
    assert root[0].find("Number").text == "+46705550000"  # type: ignore[union-attr]
    row = call_row(app, sid)
    assert (row.state, row.outcome_reason) == ("overflowed", "no_operator")


def test_it_enqueues_when_an_operator_is_logged_in_even_if_paused(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    configure(app, personas, no_operator_action="forward", no_operator_forward_number="+46705550000")
    log_in_operator(app, personas, state="paused")
    assert call(client, personas)[-1].tag == "Enqueue"


@pytest.mark.parametrize(
    ("language", "text"),
    [
        (
            "sv",
            "Just nu finns ingen telefonist som kan ta emot ditt samtal. Försök gärna igen senare. Hej då.",
        ),
        (
            "en",
            "There is no operator available to take your call at the moment. "
            "Please try again later. Goodbye.",
        ),
    ],
)
def test_it_says_the_no_operator_message_when_configured_to_close(
    app: Flask, client: FlaskClient, personas: Personas, language: str, text: str
) -> None:
    configure(app, personas, no_operator_action="close", language=language)
    sid = new_call_sid()
    root = call(client, personas, sid)
    assert spoken_text(root) == [text]
    assert root[-1].tag == "Hangup"
    assert call_row(app, sid).state == "closed"
