"""Conferences: <Dial><Conference>, the Participants REST (create, hold, announce, update, remove) and
the conference status callbacks, as twilio.md §3 and §5 describe them."""

from __future__ import annotations

import pytest
from flask import Response
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from queue_app.sim import CallerScript, EmulatorHttpClient, PhoneNumber

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BASE, CALLER, NUMBER, twiml

COLLEAGUE = "+46705555555"
JOIN = (
    '<Dial><Conference participantLabel="caller" endConferenceOnExit="true" '
    f'statusCallback="{BASE}/conf" statusCallbackEvent="start end join leave hold unhold announcement">'
    "room</Conference></Dial>"
)


@pytest.fixture
def client(emulator):
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EmulatorHttpClient(emulator))


@pytest.fixture
def room(emulator, fake, client):
    """A caller alone in conference `room`; returns (call handle, conference SID)."""
    fake.docs["/voice"] = twiml(JOIN)
    fake.docs["/conf"] = lambda form: Response("", status=204)
    call = emulator.place_call(CALLER, NUMBER, CallerScript(patience=None))
    emulator.advance(2)
    [conference] = client.conferences.list(friendly_name="room", status="in-progress")
    return call, conference.sid


def events(fake) -> list[tuple[str, str]]:
    return [(r.form["StatusCallbackEvent"], r.form.get("ParticipantLabel", "")) for r in fake.to("/conf")]


def test_a_held_participant_hears_the_hold_url_and_an_unhold_is_reported(emulator, fake, client, room):
    call, sid = room
    fake.docs["/hold"] = twiml("<Say>Please hold</Say><Play>http://app.test/music.wav</Play>")

    client.conferences(sid).participants("caller").update(hold=True, hold_url=f"{BASE}/hold")
    emulator.advance(1)
    client.conferences(sid).participants("caller").update(hold=False)
    emulator.advance(1)

    assert call.heard_text_contains("Please hold")
    assert call.heard_play_of("music.wav")
    # HoldMethod defaults to GET (twilio.md §5).
    assert [r.method for r in fake.to("/hold")] == ["GET"]
    assert ("participant-hold", "caller") in events(fake)
    assert ("participant-unhold", "caller") in events(fake)


def test_an_announcement_is_fetched_heard_and_reported(emulator, fake, client, room):
    call, sid = room
    fake.docs["/announce"] = twiml('<Say language="en-GB">Your colleague is busy</Say>')

    client.conferences(sid).participants("caller").update(announce_url=f"{BASE}/announce")
    emulator.advance(1)

    assert call.heard_text_contains("Your colleague is busy")
    [request] = fake.to("/announce")
    assert request.method == "POST" and request.form["ConferenceSid"] == sid
    assert events(fake)[-1] == ("announcement-end", "caller")


def test_an_announcement_that_cannot_be_fetched_is_reported_as_failed(emulator, fake, client, room):
    _call, sid = room

    client.conferences(sid).participants("caller").update(announce_url=f"{BASE}/missing")
    emulator.advance(1)

    assert events(fake)[-1] == ("announcement-fail", "caller")


def test_a_participant_added_by_rest_joins_when_answered_and_leaves_when_removed(
    emulator, fake, client, room
):
    call, sid = room
    fake.docs["/leg"] = lambda form: Response("", status=204)
    emulator.register_number(COLLEAGUE, PhoneNumber(answer_after=3))

    created = client.conferences(sid).participants.create(
        from_=NUMBER,
        to=COLLEAGUE,
        label="colleague",
        status_callback=f"{BASE}/leg",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    emulator.advance(5)
    labels = {p.label for p in client.conferences(sid).participants.list()}
    client.conferences(sid).participants("colleague").delete()
    emulator.advance(1)

    assert labels == {"caller", "colleague"}
    leg = emulator.call(created.call_sid)
    assert leg.status == "completed"
    statuses = [r.form["CallStatus"] for r in fake.to("/leg")]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert ("participant-leave", "colleague") in events(fake)
    assert call.status == "in-progress"  # the caller stays in the conference


def test_a_busy_participant_never_joins_and_its_callback_says_busy(emulator, fake, client, room):
    _call, sid = room
    fake.docs["/leg"] = lambda form: Response("", status=204)
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="busy"))

    client.conferences(sid).participants.create(
        from_=NUMBER, to=COLLEAGUE, label="colleague", status_callback=f"{BASE}/leg"
    )
    emulator.advance(10)

    assert [r.form["CallStatus"] for r in fake.to("/leg")] == ["busy"]
    assert ("participant-join", "colleague") not in events(fake)


def test_end_conference_on_exit_can_be_changed_by_update(emulator, fake, client, room):
    call, sid = room
    emulator.register_number(COLLEAGUE, PhoneNumber(answer_after=1, script=CallerScript(talk_for=20)))
    client.conferences(sid).participants.create(from_=NUMBER, to=COLLEAGUE, label="colleague")
    emulator.advance(3)

    client.conferences(sid).participants("colleague").update(end_conference_on_exit=True)
    emulator.advance(30)  # the colleague hangs up after 20 s and takes the conference with them

    assert call.status == "completed"
    assert events(fake)[-1][0] == "conference-end"


def test_a_removed_or_unknown_participant_is_404(client, room):
    _call, sid = room

    with pytest.raises(TwilioRestException) as error:
        client.conferences(sid).participants("nobody").update(hold=True)

    assert (error.value.status, error.value.code) == (404, 20404)
