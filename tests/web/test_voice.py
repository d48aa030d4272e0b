"""The caller's webhooks over HTTP, signed as Twilio signs them, TwiML parsed with ElementTree."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import (
    Call,
    CallEvent,
    MissedCall,
    OperatorStatus,
    Prompt,
    Queue,
    QueueLogin,
    Recording,
)
from queue_app.services import calls

from ..factories import Personas, make_number, make_org, make_queue
from ..twilio_helpers import call_params, new_call_sid, signed_post, spoken_text, twiml_of, voice_params

BASE = "http://koe.test"


def call_row(app: Flask, call_sid: str) -> Call:
    with app.app_context(), db.transaction() as session:
        return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


def count(app: Flask, model: type, *where: object) -> int:
    with app.app_context(), db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def events(app: Flask, call_sid: str, kind: str) -> list[CallEvent]:
    with app.app_context(), db.transaction() as session:
        call = session.scalars(select(Call).where(Call.call_sid == call_sid)).one()
        return list(
            session.scalars(
                select(CallEvent)
                .where(CallEvent.call_id == call.id, CallEvent.kind == kind)
                .order_by(CallEvent.id)
            )
        )


def set_call(app: Flask, call_sid: str, **values: object) -> None:
    with app.app_context(), db.transaction() as session:
        call = session.scalars(select(Call).where(Call.call_sid == call_sid)).one()
        for key, value in values.items():
            setattr(call, key, value)


def arrive(client: FlaskClient, personas: Personas, call_sid: str | None = None) -> str:
    sid = call_sid or new_call_sid()
    twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))
    return sid


def wait_fetch(client: FlaskClient, call_sid: str):  # type: ignore[no-untyped-def]
    params = call_params(
        call_sid, QueuePosition="1", QueueTime="0", CurrentQueueSize="1", CallStatus="in-progress"
    )
    return twiml_of(signed_post(client, "/twilio/wait", params))


# --- arrival ------------------------------------------------------------------------------------


def test_it_welcomes_a_caller_of_a_known_number_and_enqueues_them(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    sid = new_call_sid()
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))

    say, enqueue = list(root)
    assert say.tag == "Say"
    assert say.text == "Välkommen till Acme AB."
    assert say.attrib == {"language": "sv-SE", "voice": "Polly.Astrid"}
    assert enqueue.tag == "Enqueue"
    assert enqueue.attrib == {
        "waitUrl": f"{BASE}/twilio/wait",
        "waitUrlMethod": "POST",
        "action": f"{BASE}/twilio/queue-result",
        "method": "POST",
    }
    call = call_row(app, sid)
    # A Twilio queue of the caller's own: the operator who answers bridges with exactly them.
    assert enqueue.text == f"koe-caller-{call.id}"
    assert call.state == "waiting"
    assert call.queue_id == personas.bob.queue_id
    assert call.organisation_id == personas.bob.organisation_id
    assert call.arrived_at == clock.now()
    assert call.entered_queue_at == clock.now()
    assert call.from_number == "+46701234567"


def test_it_plays_the_queues_recorded_welcome_and_prefers_it_to_the_organisations(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    with app.app_context(), db.transaction() as session:
        org_id, queue_id = personas.bob.organisation_id, personas.bob.queue_id
        session.add(Prompt(organisation_id=org_id, queue_id=None, kind="welcome", language="sv", text="Hej."))
        session.add(
            Prompt(
                organisation_id=org_id,
                queue_id=queue_id,
                kind="welcome",
                language="sv",
                audio_key="https://cdn.example/welcome.wav",
            )
        )
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number)))
    assert [child.tag for child in root] == ["Play", "Enqueue"]
    assert root.find("Play").text == "https://cdn.example/welcome.wav"  # type: ignore[union-attr]


def test_it_says_the_organisations_welcome_text_in_an_english_queue_with_an_english_voice(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context(), db.transaction() as session:
        org = make_org(session, name="Nordic Ltd")
        queue = make_queue(session, org, language="en")
        number = make_number(session, org, queue).number
        session.add(Prompt(organisation_id=org.id, kind="welcome", language="en", text="Hello & welcome <3"))
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(number)))
    say = root.find("Say")
    assert say is not None
    assert say.text == "Hello & welcome <3"
    assert say.attrib == {"language": "en-GB", "voice": "Polly.Amy"}


def test_it_skips_the_welcome_when_the_queue_switched_it_off(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), db.transaction() as session:
        org = make_org(session)
        number = make_number(session, org, make_queue(session, org, welcome_enabled=False)).number
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(number)))
    assert [child.tag for child in root] == ["Enqueue"]


def test_it_apologises_and_hangs_up_on_an_unknown_number(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    response = signed_post(client, "/twilio/voice", voice_params("+46800000000"))
    root = twiml_of(response)
    assert [child.tag for child in root] == ["Say", "Say", "Hangup"]
    assert [say.attrib["language"] for say in root.iter("Say")] == ["sv-SE", "en-GB"]
    assert "Tyvärr" in spoken_text(root)[0]
    assert "Sorry" in spoken_text(root)[1]
    assert count(app, Call) == 0


def test_it_records_a_call_to_a_number_without_a_queue_as_rejected(app: Flask, client: FlaskClient) -> None:
    with app.app_context(), db.transaction() as session:
        org = make_org(session)
        number = make_number(session, org, None).number
    sid = new_call_sid()
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(number, sid)))
    assert root[-1].tag == "Hangup"
    call = call_row(app, sid)
    assert call.state == "rejected"
    assert call.outcome_reason == "number_without_queue"
    assert call.ended_at is not None


def test_it_creates_one_call_when_twilio_retries_the_voice_webhook(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    sid = new_call_sid()
    first = twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))
    entered = clock.now()
    clock.advance(7)
    again = twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))

    assert [c.tag for c in again] == [c.tag for c in first]
    assert count(app, Call, Call.call_sid == sid) == 1
    assert call_row(app, sid).entered_queue_at == entered
    assert len(events(app, sid, "arrived")) == 1


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "kwargs"),
    [
        ("forged", {"signature": "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="}),
        ("missing", {"signature": ""}),
        ("wrong token", {"token": "some-other-token"}),
        ("another url", {"signed_url": f"{BASE}/twilio/status"}),
    ],
)
@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/wait", "/twilio/queue-result", "/twilio/status"])
def test_it_refuses_a_request_without_a_valid_signature(
    app: Flask, client: FlaskClient, personas: Personas, path: str, how: str, kwargs: dict[str, str]
) -> None:
    if path == "/twilio/status" and how == "another url":
        kwargs = {"signed_url": f"{BASE}/twilio/voice"}
    response = signed_post(client, path, voice_params(personas.bob.number), **kwargs)
    assert response.status_code == 403, how
    assert count(app, Call) == 0


def test_it_refuses_a_request_with_no_signature_header(client: FlaskClient, personas: Personas) -> None:
    response = client.post("/twilio/voice", data=voice_params(personas.bob.number))
    assert response.status_code == 403


def test_it_validates_a_request_that_came_through_a_tls_terminating_proxy(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://public.example"
    response = signed_post(
        client,
        "/twilio/voice",
        voice_params(personas.bob.number),
        signed_url="https://public.example/twilio/voice",
        base_url="http://internal",
    )
    enqueue = twiml_of(response).find("Enqueue")
    assert enqueue is not None
    assert enqueue.attrib["waitUrl"] == "https://public.example/twilio/wait"
    assert enqueue.attrib["action"] == "https://public.example/twilio/queue-result"


# --- waiting ------------------------------------------------------------------------------------


def test_it_counts_positions_from_our_own_queue_order(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    first = arrive(client, personas)
    clock.advance(1)
    second = arrive(client, personas)
    clock.advance(1)
    third = arrive(client, personas)

    assert "Du är först i kön." in spoken_text(wait_fetch(client, first))
    assert "Du är nummer två i kön." in spoken_text(wait_fetch(client, second))
    assert "Du är nummer tre i kön." in spoken_text(wait_fetch(client, third))

    # A priority caller goes ahead; one who has been answered no longer counts.
    set_call(app, third, priority=5)
    set_call(app, first, state="connected")
    clock.advance(120)
    assert "Du är först i kön." in spoken_text(wait_fetch(client, third))
    assert "Du är nummer två i kön." in spoken_text(wait_fetch(client, second))


def test_it_plans_first_message_position_music_and_periodic_message_over_time(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    sid = arrive(client, personas)

    root = wait_fetch(client, sid)
    said = spoken_text(root)
    assert said[0].startswith("Just nu är alla våra telefonister upptagna.")
    assert said[1] == "Du är först i kön."
    assert len(said) == 2, "no operator is logged in, so no expected wait is promised"
    play = root.find("Play")
    assert play is not None
    assert play.text == f"{BASE}/twilio/audio/hold.wav"
    assert play.attrib["loop"] == "2"

    clock.advance(25)
    root = wait_fetch(client, sid)
    assert spoken_text(root) == []
    assert root.find("Play").attrib["loop"] == "3"  # type: ignore[union-attr]

    clock.advance(35)  # a minute in the queue: periodic message, then the position again
    said = spoken_text(wait_fetch(client, sid))
    assert said[0].startswith("Tack för att du väntar.")
    assert said[1] == "Du är först i kön."


def test_it_announces_an_expected_wait_when_operators_serve_and_history_exists(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    now = clock.now()
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        queue.wrap_up_seconds = 30
        for i in range(3):
            session.add(
                Call(
                    organisation_id=personas.bob.organisation_id,
                    queue_id=queue.id,
                    call_sid=f"CAhistory{i}",
                    from_number="+4670",
                    to_number=personas.bob.number,
                    state="completed",
                    arrived_at=now - timedelta(hours=1),
                    answered_at=now - timedelta(minutes=50),
                    ended_at=now - timedelta(minutes=47),
                )
            )
        session.add(
            OperatorStatus(
                user_id=personas.bob.user_id, organisation_id=queue.organisation_id, state="on_call"
            )
        )
        session.add(QueueLogin(user_id=personas.bob.user_id, queue_id=queue.id, logged_in_at=now))
    arrive(client, personas)
    second = arrive(client, personas)

    said = spoken_text(wait_fetch(client, second))
    # Two callers per operator, each (180 s talk + 30 s wrap-up): 420 s.
    assert said[-2:] == ["Du är nummer två i kön.", "Beräknad väntetid är ungefär sju minuter."]
    assert call_row(app, second).first_estimate_seconds == 420


def history_call(personas: Personas, queue_id: int, n: int, state: str, **times: object) -> Call:
    return Call(
        organisation_id=personas.bob.organisation_id,
        queue_id=queue_id,
        call_sid=f"CAhist{queue_id}x{n}",
        from_number="+4670",
        to_number=personas.bob.number,
        state=state,
        **times,
    )


def test_it_promises_less_when_callers_give_up_and_adds_the_ring_the_books_show(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    now = clock.now()

    def ago(seconds: float):  # type: ignore[no-untyped-def]
        return now - timedelta(seconds=seconds)

    bob, queue_id = personas.bob.user_id, personas.bob.queue_id
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, queue_id)
        assert queue is not None
        queue.wrap_up_seconds = 30
        rows = [
            # Bob's three calls of 180 s; the next caller waited each time, answered 10 s after the
            # wrap-up. Waits 100, 120 and 140 s.
            dict(entered_queue_at=ago(1000), answered_at=ago(900), ended_at=ago(720)),
            dict(entered_queue_at=ago(800), answered_at=ago(680), ended_at=ago(500)),
            dict(entered_queue_at=ago(600), answered_at=ago(460), ended_at=ago(280)),
        ]
        for n, times in enumerate(rows):
            session.add(
                history_call(
                    personas, queue_id, n, "completed", answered_by_id=bob, arrived_at=ago(1001), **times
                )
            )
        # One caller hung up after 140 s: one abandonment in 500 s of waiting.
        session.add(
            history_call(
                personas,
                queue_id,
                3,
                "abandoned",
                arrived_at=ago(401),
                entered_queue_at=ago(400),
                ended_at=ago(260),
            )
        )
        # Not this queue's waiting: turned away before the queue, or another organisation's queue.
        session.add(history_call(personas, queue_id, 4, "closed", arrived_at=ago(300), ended_at=ago(300)))
        other = history_call(
            personas,
            personas.charlie.queue_id,
            5,
            "abandoned",
            arrived_at=ago(99),
            entered_queue_at=ago(99),
            ended_at=ago(1),
        )
        other.organisation_id = personas.charlie.organisation_id
        session.add(other)
        session.add(OperatorStatus(user_id=bob, organisation_id=queue.organisation_id, state="on_call"))
        session.add(QueueLogin(user_id=bob, queue_id=queue_id, logged_in_at=now))
    arrive(client, personas)
    second = arrive(client, personas)

    said = spoken_text(wait_fetch(client, second))
    # Bob frees every 180 + 30 + 10 s; callers hang up at 1 per 500 s; then the caller's own ring:
    # 10 + 1 / (1/220 + 2/500) + 1 / (1/220 + 1/500) = 10 + 117.0 + 152.8 = 279.8 s.
    assert said[-1] == "Beräknad väntetid är ungefär fem minuter."
    assert call_row(app, second).first_estimate_seconds == 280


def test_it_hangs_up_a_wait_fetch_for_a_call_it_does_not_know(
    client: FlaskClient, personas: Personas
) -> None:
    root = wait_fetch(client, new_call_sid())
    assert root[-1].tag == "Hangup"


# --- leaving the queue --------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["queue-result first", "status first"])
def test_it_abandons_a_caller_who_hangs_up_while_waiting_exactly_once(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock, order: str
) -> None:
    sid = arrive(client, personas)
    clock.advance(42)
    hangup = call_params(sid, QueueResult="hangup", QueueTime="42", QueueSid="QU" + "1" * 32)
    status = call_params(sid, CallStatus="completed", SequenceNumber="1", CallDuration="44")
    posts = [("/twilio/queue-result", hangup), ("/twilio/status", status)]
    if order == "status first":
        posts.reverse()
    for path, params in [*posts, *posts]:  # and every one of them retried
        root = twiml_of(signed_post(client, path, params))
        assert list(root) == []

    call = call_row(app, sid)
    assert call.state == "abandoned"
    assert call.ended_at == clock.now()
    assert len(events(app, sid, "call_ended")) == 1
    assert [e.data["to"] for e in events(app, sid, "state_changed")] == ["waiting", "abandoned"]
    assert len(events(app, sid, "twilio_status")) == 1
    assert len(events(app, sid, "queue_result")) == 1
    assert call.twilio_queue_sid == "QU" + "1" * 32  # the worker deletes the caller's queue now


def test_it_records_a_redirect_by_the_dispatcher_and_does_nothing_else(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    set_call(app, sid, state="offered")
    for result in ("redirected", "redirected"):
        root = twiml_of(
            signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult=result, QueueTime="9"))
        )
        assert list(root) == []
    assert call_row(app, sid).state == "offered"
    assert len(events(app, sid, "queue_result")) == 1


def test_it_tells_the_caller_when_twilios_queue_is_full(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    root = twiml_of(signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult="queue-full")))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert "väldigt många" in spoken_text(root)[0]
    assert call_row(app, sid).state == "overflowed"


def test_it_apologises_when_the_queue_fails_the_caller(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    root = twiml_of(signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult="error")))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert "tekniskt fel" in spoken_text(root)[0]
    assert call_row(app, sid).outcome_reason == "queue_error"


# --- back to the queue --------------------------------------------------------------------------


def test_it_returns_caller_to_their_old_place_after_missed_offer(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    first = arrive(client, personas)
    entered = clock.now()
    clock.advance(5)
    arrive(client, personas)
    wait_fetch(client, first)
    set_call(app, first, state="offered")
    clock.advance(30)

    root = twiml_of(signed_post(client, "/twilio/enqueue", call_params(first)))
    assert [c.tag for c in root] == ["Enqueue"], "no second welcome"
    assert root[0].attrib["waitUrl"] == f"{BASE}/twilio/wait"
    call = call_row(app, first)
    assert call.state == "waiting"
    assert call.entered_queue_at == entered

    said = spoken_text(wait_fetch(client, first))
    assert said == ["Du har kvar din plats i kön.", "Du är först i kön."]


def test_it_hangs_up_a_re_enqueue_of_an_unknown_call(client: FlaskClient, personas: Personas) -> None:
    root = twiml_of(signed_post(client, "/twilio/enqueue", call_params(new_call_sid())))
    assert root[-1].tag == "Hangup"


# --- status callbacks ---------------------------------------------------------------------------


def test_it_ignores_duplicate_and_out_of_order_status_callbacks(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    set_call(app, sid, state="connected")
    completed = call_params(sid, CallStatus="completed", SequenceNumber="3", CallDuration="95")
    in_progress = call_params(sid, CallStatus="in-progress", SequenceNumber="2")
    for params in (completed, in_progress, completed, in_progress):
        assert signed_post(client, "/twilio/status", params).status_code == 200

    call = call_row(app, sid)
    assert call.state == "completed"
    assert call.last_status_sequence == 3
    assert [e.data["CallStatus"] for e in events(app, sid, "twilio_status")] == ["completed", "in-progress"]
    assert len(events(app, sid, "call_ended")) == 1


def test_it_applies_status_callbacks_without_sequence_numbers_once(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    for _ in range(2):
        signed_post(client, "/twilio/status", call_params(sid, CallStatus="no-answer"))
    assert call_row(app, sid).state == "abandoned"
    assert len(events(app, sid, "twilio_status")) == 1


def test_it_answers_200_to_a_status_callback_for_an_unknown_call(
    client: FlaskClient, personas: Personas
) -> None:
    response = signed_post(client, "/twilio/status", call_params(new_call_sid(), CallStatus="completed"))
    assert response.status_code == 200


def test_it_leaves_a_caller_waiting_for_a_callback_pending_when_they_hang_up(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = arrive(client, personas)
    set_call(app, sid, state="callback_pending")
    signed_post(client, "/twilio/status", call_params(sid, CallStatus="completed", SequenceNumber="4"))
    assert call_row(app, sid).state == "callback_pending"


def test_it_hands_a_call_that_ends_with_an_operator_attached_to_the_operators_service(
    app: Flask, client: FlaskClient, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    def on_call_ended(session, call, now):  # type: ignore[no-untyped-def]
        seen.append((call.call_sid, call.state))

    real = calls._optional_hook
    monkeypatch.setattr(
        calls,
        "_optional_hook",
        lambda module, name: on_call_ended if name == "on_call_ended" else real(module, name),
    )
    sid = arrive(client, personas)
    call_id = call_row(app, sid).id
    set_call(app, sid, state="connected")
    with app.app_context(), db.transaction() as session:
        session.add(
            OperatorStatus(
                user_id=personas.bob.user_id,
                organisation_id=personas.bob.organisation_id,
                state="on_call",
                current_call_id=call_id,
            )
        )
    signed_post(client, "/twilio/status", call_params(sid, CallStatus="completed", SequenceNumber="5"))
    assert seen == [(sid, "completed")]


# --- the edges ----------------------------------------------------------------------------------


def test_it_writes_one_structured_log_line_per_webhook(
    client: FlaskClient, personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="koe.webhooks")
    sid = new_call_sid()
    signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid))
    lines = [r for r in caplog.records if r.name == "koe.webhooks" and r.getMessage().startswith("webhook ")]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert re.fullmatch(
        rf"webhook route=/twilio/voice call_sid={sid} outcome=enqueue status=200 ms=\d+\.\d", message
    )
    assert lines[0].levelno == logging.INFO
    assert lines[0].webhook["status"] == 200  # type: ignore[attr-defined]


def test_it_logs_a_refused_signature_as_forbidden(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="koe.webhooks")
    signed_post(client, "/twilio/status", call_params("CAforged", CallStatus="completed"), signature="nope")
    assert any("outcome=forbidden" in r.getMessage() for r in caplog.records)


def test_it_apologises_and_hangs_up_when_a_webhook_fails(
    client: FlaskClient, personas: Personas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("database on fire")

    caplog.set_level(logging.INFO, logger="koe.webhooks")
    monkeypatch.setattr(calls, "answer_incoming", broken)
    sid = new_call_sid()
    root = twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid)))
    assert [c.tag for c in root] == ["Say", "Say", "Hangup"]
    assert any(r.levelno == logging.ERROR and sid in r.getMessage() for r in caplog.records)
    assert any("outcome=error" in r.getMessage() for r in caplog.records)


def test_it_serves_the_hold_music_publicly(client: FlaskClient) -> None:
    with client.get("/twilio/audio/hold.wav") as response:
        assert response.status_code == 200
        assert response.mimetype == "audio/wav"
        assert response.data[:4] == b"RIFF"
    for path in ("/twilio/audio/missing.wav", "/twilio/audio/..%2Fpyproject.toml"):
        with client.get(path) as response:
            assert response.status_code == 404


def test_it_keeps_phone_numbers_scoped_to_their_organisation(
    app: Flask, client: FlaskClient, personas: Personas
) -> None:
    sid = new_call_sid()
    signed_post(client, "/twilio/voice", voice_params(personas.charlie.number, sid))
    call = call_row(app, sid)
    assert call.organisation_id == personas.charlie.organisation_id
    assert call.queue_id == personas.charlie.queue_id


# --- caller options: call me back, leave a message ----------------------------------------------


def enable_options(app: Flask, personas: Personas, **values: object) -> None:
    with app.app_context(), db.transaction() as session:
        queue = session.get(Queue, personas.bob.queue_id)
        assert queue is not None
        queue.callback_enabled = True
        queue.voicemail_enabled = True
        queue.caller_options_after_seconds = 90
        for key, value in values.items():
            setattr(queue, key, value)


def test_it_offers_the_caller_options_only_after_the_configured_wait(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    enable_options(app, personas)
    sid = arrive(client, personas)
    assert wait_fetch(client, sid).find("Gather") is None
    clock.advance(90)

    root = wait_fetch(client, sid)
    [gather] = list(root)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "numDigits": "1",
        "action": f"{BASE}/twilio/options",
        "method": "POST",
        "timeout": "1",
    }
    said = spoken_text(root)
    assert said[-2:] == [
        "Om du vill att vi ringer upp dig i stället för att vänta, tryck 1. Du behåller din plats i kön.",
        "Om du vill lämna ett meddelande, tryck 2.",
    ]
    assert gather[-1].tag == "Play", "the music is inside the Gather, so a key works during it"
    clock.advance(25)
    again = wait_fetch(client, sid)
    assert again.find("Gather") is not None, "the keys keep working"
    assert not any("tryck" in text for text in spoken_text(again)), "the offer is not repeated at once"


def test_it_offers_no_callback_to_a_withheld_number(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    enable_options(app, personas, language="en")
    sid = new_call_sid()
    twiml_of(signed_post(client, "/twilio/voice", voice_params(personas.bob.number, sid, from_="anonymous")))
    clock.advance(90)
    said = spoken_text(wait_fetch(client, sid))
    assert "To leave a message, press 2." in said
    assert not any("press 1" in text for text in said)
    root = twiml_of(signed_post(client, "/twilio/options", call_params(sid, Digits="1")))
    assert spoken_text(root) == ["That is not one of the choices. You keep your place in the queue."]
    assert call_row(app, sid).state == "waiting"


def test_it_keeps_the_place_of_a_caller_who_asks_to_be_called_back(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    enable_options(app, personas)
    first = arrive(client, personas)
    clock.advance(1)
    second = arrive(client, personas)
    clock.advance(90)

    root = twiml_of(signed_post(client, "/twilio/options", call_params(first, Digits="1")))
    assert [c.tag for c in root] == ["Say", "Leave"]
    assert spoken_text(root)[0].startswith("Tack. Vi ringer upp dig")
    call = call_row(app, first)
    assert (call.state, call.callback_number) == ("callback_pending", "+46701234567")

    after = twiml_of(signed_post(client, "/twilio/queue-result", call_params(first, QueueResult="leave")))
    assert [c.tag for c in after] == ["Hangup"]
    signed_post(client, "/twilio/status", call_params(first, CallStatus="completed", SequenceNumber="2"))
    assert call_row(app, first).state == "callback_pending"
    assert "Du är nummer två i kön." in spoken_text(wait_fetch(client, second)), (
        "the callback keeps its place"
    )


def test_it_records_a_message_attached_to_the_call_and_lists_it_as_missed(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    enable_options(app, personas)
    sid = arrive(client, personas)
    clock.advance(90)

    root = twiml_of(signed_post(client, "/twilio/options", call_params(sid, Digits="2")))
    assert [c.tag for c in root] == ["Leave"]
    after = twiml_of(signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult="leave")))
    assert [c.tag for c in after] == ["Say", "Record"]
    assert spoken_text(after) == [
        "Tala in ditt meddelande efter tonen. Tryck fyrkant eller lägg på när du är klar."
    ]
    record = after[1].attrib
    assert record["maxLength"] == "120"
    assert record["action"] == f"{BASE}/twilio/voicemail"
    assert record["recordingStatusCallback"] == f"{BASE}/twilio/voicemail-status"

    recording_url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    done = twiml_of(
        signed_post(
            client,
            "/twilio/voicemail",
            call_params(sid, RecordingUrl=recording_url, RecordingDuration="14", Digits="#"),
        )
    )
    assert [c.tag for c in done] == ["Say", "Hangup"]
    assert spoken_text(done)[0].startswith("Tack för ditt meddelande.")
    status = call_params(sid, RecordingSid="RE1", RecordingUrl=recording_url, RecordingStatus="completed")
    assert (
        signed_post(client, "/twilio/voicemail-status", status | {"RecordingDuration": "14"}).status_code
        == 200
    )

    call = call_row(app, sid)
    assert (call.state, call.outcome_reason) == ("abandoned", "voicemail")
    with app.app_context(), db.transaction() as session:
        [recording] = session.scalars(select(Recording).where(Recording.call_id == call.id)).all()
        assert (
            recording.recording_sid,
            recording.twilio_url,
            recording.duration_seconds,
            recording.status,
        ) == (
            "RE1",
            recording_url,
            14.0,
            "completed",
        )
        [missed] = session.scalars(select(MissedCall).where(MissedCall.call_id == call.id)).all()
        assert (missed.reason, missed.queue_id) == ("voicemail", personas.bob.queue_id)


def test_it_lists_a_caller_who_hangs_up_while_waiting_as_missed_once(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    sid = arrive(client, personas)
    clock.advance(30)
    for _ in range(2):
        signed_post(client, "/twilio/queue-result", call_params(sid, QueueResult="hangup", QueueTime="30"))
        signed_post(client, "/twilio/status", call_params(sid, CallStatus="completed", SequenceNumber="3"))
    assert count(app, MissedCall, MissedCall.reason == "abandoned") == 1
