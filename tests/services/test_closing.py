"""Callers already waiting when their queue closes: apply_closures and the /twilio/closed route."""

from __future__ import annotations

from datetime import time, timedelta

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
    Queue,
    QueueLogin,
    Schedule,
    ScheduleRule,
)
from queue_app.services import closing

from ..factories import Personas
from ..twilio_helpers import call_params, new_call_sid, signed_post, spoken_text, twiml_of, voice_params

BASE = "http://koe.test"
CLOSING_TIME = utc("2026-11-25 16:00")  # Wednesday 17:00 in Stockholm
CLOSED_SV = "Vi har stängt just nu. Välkommen att ringa igen under våra öppettider. Hej då."


def setup_queue(app: Flask, personas: Personas, **values: object) -> None:
    """Weekdays 08-17, with the given closing settings."""
    with app.app_context(), db.transaction() as session:
        schedule = Schedule(
            organisation_id=personas.bob.organisation_id, name="Kontor", holiday_categories=[]
        )
        schedule.rules = [
            ScheduleRule(
                effect="open", rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", starts=time(8), ends=time(17)
            )
        ]
        session.add(schedule)
        session.flush()
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        queue.schedule_id = schedule.id
        for key, value in values.items():
            setattr(queue, key, value)


def arrive(client: FlaskClient, personas: Personas) -> str:
    sid = new_call_sid()
    assert (
        twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))[-1].tag
        == "Enqueue"
    )
    return sid


def state_of(app: Flask, sid: str) -> str:
    with app.app_context(), db.transaction() as session:
        return session.scalars(select(Call.state).where(Call.call_sid == sid)).one()


def apply(app: Flask, now: object) -> list[closing.ClosingRedirect]:
    with app.app_context():
        return closing.apply_closures(now)  # type: ignore[arg-type]


def test_it_redirects_each_waiting_caller_once_when_hours_end(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="close")
    first, second = arrive(client, personas), arrive(client, personas)

    assert apply(app, CLOSING_TIME - timedelta(seconds=1)) == []
    redirects = apply(app, CLOSING_TIME)

    assert sorted(r.call_sid for r in redirects) == sorted([first, second])
    assert {r.url(BASE) for r in redirects} == {
        f"{BASE}/twilio/closed/{first}",
        f"{BASE}/twilio/closed/{second}",
    }
    assert all(r.group_key is None and r.transfer_id is None for r in redirects)
    assert state_of(app, first) == state_of(app, second) == "closed"
    assert apply(app, CLOSING_TIME + timedelta(seconds=2)) == [], "claimed once"
    with app.app_context(), db.transaction() as session:
        kinds = session.scalars(select(CallEvent.kind).where(CallEvent.kind == "closed_while_waiting")).all()
        assert len(kinds) == 2


def test_it_answers_the_closing_twiml_on_the_closed_route(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="close")
    sid = arrive(client, personas)
    clock.set(CLOSING_TIME)
    [redirect] = apply(app, clock.now())

    root = twiml_of(signed_post(client, redirect.path, call_params(sid)))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert spoken_text(root) == [CLOSED_SV]
    with app.app_context(), db.transaction() as session:
        call = session.scalars(select(Call).where(Call.call_sid == sid)).one()
        assert (call.state, call.outcome_reason) == ("closed", "outside_hours")


def test_it_forwards_from_the_closed_route_when_the_queue_forwards_when_closed(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(
        app,
        personas,
        closing_while_waiting="close",
        closed_action="forward",
        closed_forward_number="+46701112233",
    )
    sid = arrive(client, personas)
    clock.set(CLOSING_TIME)
    apply(app, clock.now())
    root = twiml_of(signed_post(client, f"/twilio/closed/{sid}", call_params(sid)))
    assert [c.tag for c in root] == ["Dial"]
    assert root[0].find("Number").text == "+46701112233"  # type: ignore[union-attr]


def test_it_speaks_the_closures_message_to_callers_waiting_when_it_starts(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="close")
    sid = arrive(client, personas)
    with app.app_context(), db.transaction() as session:
        session.add(
            Closure(
                organisation_id=personas.bob.organisation_id,
                all_queues=True,
                starts_at=clock.now() + timedelta(minutes=1),
                message="Vi stänger för en brandövning.",
            )
        )
    assert apply(app, clock.now()) == []
    clock.advance(60)
    [redirect] = apply(app, clock.now())
    root = twiml_of(signed_post(client, redirect.path, call_params(sid)))
    assert spoken_text(root) == ["Vi stänger för en brandövning."]


def test_it_lets_callers_stay_to_be_served_while_an_operator_is_logged_in(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="serve")
    sid = arrive(client, personas)
    with app.app_context(), db.transaction() as session:
        session.add(
            OperatorStatus(
                user_id=personas.bob.user_id, organisation_id=personas.bob.organisation_id, state="on_call"
            )
        )
        session.add(
            QueueLogin(user_id=personas.bob.user_id, queue_id=personas.bob.queue_id, logged_in_at=clock.now())
        )
    assert apply(app, CLOSING_TIME) == []
    assert state_of(app, sid) == "waiting"

    with app.app_context(), db.transaction() as session:
        status = session.get(OperatorStatus, personas.bob.user_id)
        assert status is not None
        status.state = "offline"
    [redirect] = apply(app, CLOSING_TIME + timedelta(minutes=30))
    assert redirect.call_sid == sid, "nobody left to answer: nobody is left waiting forever"


def test_it_leaves_a_claimed_caller_by_the_wait_url_when_the_redirect_never_arrived(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="close")
    sid = arrive(client, personas)
    clock.set(CLOSING_TIME)
    apply(app, clock.now())

    wait = twiml_of(signed_post(client, "/twilio/wait", call_params(sid, QueuePosition="1", QueueTime="60")))
    assert [c.tag for c in wait] == ["Leave"]
    after = twiml_of(signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult="leave")))
    assert [c.tag for c in after] == ["Say", "Hangup"]
    assert spoken_text(after) == [CLOSED_SV]
    assert state_of(app, sid) == "closed"


def test_it_closes_a_caller_redirected_by_hand_to_the_closed_route(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas)
    sid = arrive(client, personas)
    clock.set(CLOSING_TIME)
    root = twiml_of(signed_post(client, f"/twilio/closed/{sid}", call_params(sid)))
    assert spoken_text(root) == [CLOSED_SV]
    assert state_of(app, sid) == "closed"


def test_it_names_the_next_closing_of_a_queue_with_callers(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    setup_queue(app, personas, closing_while_waiting="close")
    with app.app_context():
        assert closing.next_closing_at(clock.now()) is None, "nobody waiting: nothing to wake up for"
    arrive(client, personas)
    with app.app_context():
        assert closing.next_closing_at(clock.now()) == CLOSING_TIME


def test_it_refuses_an_unsigned_request_to_the_closed_route(client: FlaskClient, personas: Personas) -> None:
    sid = new_call_sid()
    assert client.post(f"/twilio/closed/{sid}", data=call_params(sid)).status_code == 403
