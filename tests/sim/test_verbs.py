from __future__ import annotations

from datetime import timedelta

from flask import Response

from queue_app.sim import CallerScript
from queue_app.sim.audio import tone_wav

from .conftest import BASE, CALLER, NUMBER, twiml


def offsets(call, kind=None):
    start = call.call.created_at
    return [
        (round((at - start).total_seconds(), 2), k, content)
        for at, k, content, _ in call.heard
        if kind is None or k == kind
    ]


def test_it_times_say_by_its_length_and_play_by_the_wav_file(emulator, fake):
    fake.docs["/voice"] = twiml(
        '<Say language="sv-SE" voice="Polly.Astrid">Välkommen till Kö</Say>'
        '<Play loop="2">/audio/two-seconds.wav</Play><Pause length="3"/><Say>Hej då</Say>'
    )
    fake.docs["/audio/two-seconds.wav"] = lambda form: Response(tone_wav(2.0), mimetype="audio/wav")

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(60)

    say_s = emulator.say_length("Välkommen till Kö")
    assert say_s == len("Välkommen till Kö") * 0.065
    assert offsets(call) == [
        (0.0, "say", "Välkommen till Kö"),
        (round(say_s, 2), "play", f"{BASE}/audio/two-seconds.wav"),
        (round(say_s + 2, 2), "play", f"{BASE}/audio/two-seconds.wav"),
        (round(say_s + 4, 2), "pause", "3"),
        (round(say_s + 7, 2), "say", "Hej då"),
    ]
    assert call.heard[0][3] == "sv-SE"
    assert call.status == "completed"
    assert call.call.duration_s() == int(say_s + 7 + emulator.say_length("Hej då"))


def test_it_plays_an_unmeasurable_file_for_the_default_length(make_emulator, fake):
    fake.docs["/voice"] = twiml("<Play>https://cdn.example/music.mp3</Play><Say>After</Say>")
    emulator = make_emulator(play_default_seconds=12.0)

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(60)

    assert [o[0] for o in offsets(call)] == [0.0, 12.0]


def test_it_gathers_the_digits_the_caller_presses(emulator, fake):
    fake.docs["/voice"] = twiml(
        '<Gather numDigits="1" action="/menu" timeout="5"><Say>Press one for sales</Say></Gather>'
        "<Say>No answer</Say>"
    )
    fake.docs["/menu"] = lambda form: twiml(f"<Say>You chose {form['Digits']}</Say>")

    call = emulator.place_call(CALLER, NUMBER, CallerScript(presses=[{"after": 0, "digits": "1"}]))
    emulator.advance(30)

    assert call.heard_texts == ["Press one for sales", "You chose 1"]
    [menu] = fake.to("/menu")
    assert menu.form["Digits"] == "1"
    assert menu.form["CallStatus"] == "in-progress"


def test_it_moves_on_when_nothing_is_pressed_and_finishes_on_hash(emulator, fake):
    fake.docs["/voice"] = twiml('<Gather timeout="3"><Say>Enter your number</Say></Gather><Say>Nothing</Say>')
    quiet = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)
    assert quiet.heard_texts == ["Enter your number", "Nothing"]

    fake.docs["/voice"] = twiml("<Gather><Say>Enter your number</Say></Gather>")
    typing = emulator.place_call(CALLER, NUMBER, CallerScript(presses=[{"after": 0, "digits": "42#"}]))
    emulator.advance(30)
    # The action defaults to the current document's URL.
    assert [r.form.get("Digits") for r in fake.to("/voice") if r.form["CallSid"] == typing.sid] == [
        None,
        "42",
    ]


def test_it_loses_digits_pressed_while_no_gather_listens(emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Just listen</Say><Pause length='5'/>")
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(1)
    call.press("9")
    emulator.advance(30)
    assert call.call.lost_digits == ["9"]


def test_it_resolves_relative_urls_and_follows_redirects(emulator, fake):
    fake.docs["/voice"] = twiml("<Redirect>next?step=2</Redirect><Say>unreachable</Say>")
    fake.docs["/next"] = lambda form: twiml("<Say>Step two</Say><Hangup/><Say>never</Say>")

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    assert call.heard_texts == ["Step two"]
    assert fake.to("/next")[0].form["step"] == "2"


def test_it_rejects_a_call_busy_without_answering(emulator, fake):
    fake.docs["/voice"] = twiml('<Reject reason="busy"/>')
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(5)
    assert call.status == "busy"
    assert call.call.start_time is None


def test_it_lets_an_impatient_caller_hang_up(emulator, fake):
    fake.docs["/voice"] = twiml('<Say>Hold on</Say><Pause length="100"/>')
    call = emulator.place_call(CALLER, NUMBER, CallerScript(patience=20))
    emulator.advance(19)
    assert call.status == "in-progress"
    emulator.advance(2)
    assert call.status == "completed"
    assert call.call.end_time - call.call.created_at == timedelta(seconds=20)


def test_it_hangs_up_after_hearing_a_phrase(emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Welcome</Say><Say>Goodbye now</Say><Say>Still here?</Say>")
    call = emulator.place_call(CALLER, NUMBER, CallerScript(hang_up_after_hearing="Goodbye"))
    assert call.wait_until_status("completed", timeout=60)
    assert call.heard_texts == ["Welcome", "Goodbye now"]


def test_it_records_a_real_wav_served_by_the_recordings_endpoint(emulator, fake):
    from twilio.rest import Client

    from queue_app.sim import EmulatorHttpClient
    from queue_app.sim.audio import wav_duration

    from .conftest import ACCOUNT_SID, AUTH_TOKEN

    fake.docs["/voice"] = twiml(
        '<Say>Leave a message</Say><Record action="/saved" maxLength="30" recordingStatusCallback="/rec"/>'
    )
    fake.docs["/saved"] = twiml("<Say>Thanks</Say>")
    fake.docs["/rec"] = lambda form: Response("", status=204)

    call = emulator.place_call(CALLER, NUMBER, CallerScript(speak_for=4))
    emulator.advance(60)

    [saved] = fake.to("/saved")
    assert saved.form["RecordingDuration"] == "4"
    assert call.heard_texts == ["Leave a message", "Thanks"]
    [status] = fake.to("/rec")
    assert status.form["RecordingStatus"] == "completed"
    assert status.form["RecordingSid"] == saved.form["RecordingSid"]

    http = EmulatorHttpClient(emulator)
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    recording = client.recordings(saved.form["RecordingSid"]).fetch()
    assert recording.duration == "4"
    assert recording.call_sid == call.sid
    media = http.api.handle("GET", saved.form["RecordingUrl"].split("/emulator")[1] + ".wav", [], None)
    assert media.content_type == "audio/x-wav"
    assert wav_duration(media.body) == 4.0
