from __future__ import annotations

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from queue_app.sim import signature
from queue_app.sim.emulator import APPLICATION_ERROR_MESSAGE

from .conftest import BASE, CALLER, NUMBER, FakeApp, twiml

FIELDS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]


def test_it_signs_the_test_vector_of_twilio_md():
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert signature("12345", url, FIELDS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_it_signs_what_the_official_validator_accepts():
    url = "http://koe.test/twilio/voice?x=%C3%A5&y=2"
    form = [*FIELDS, ("Digits", "9"), ("SpeechResult", "hej då")]
    validator = RequestValidator("tok")
    multi = MultiDict(form)
    assert validator.validate(url, multi, signature("tok", url, form))
    assert not validator.validate(url, multi, signature("another", url, form))


def test_it_signs_a_get_without_the_body():
    url = "http://koe.test/hold.xml?QueuePosition=1"
    assert RequestValidator("tok").validate(url, {}, signature("tok", url))


def test_it_reports_11200_when_the_app_rejects_a_wrong_token(make_emulator, fake: FakeApp):
    fake.docs["/voice"] = twiml("<Say>Welcome</Say>")
    emulator = make_emulator(auth_token="not-the-apps-token")

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    assert fake.rejected >= 1
    assert fake.to("/voice") == []
    voice_errors = [(e.code, e.call_sid) for e in emulator.errors if e.url == f"{BASE}/voice"]
    assert voice_errors == [(11200, call.sid)]
    assert call.heard_texts == [APPLICATION_ERROR_MESSAGE]
    assert call.status == "completed"
