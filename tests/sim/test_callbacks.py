from __future__ import annotations

from queue_app.sim import CallerScript

from .conftest import CALLER, NUMBER, twiml


def status_callbacks(emulator, call_sid):
    return [
        (c.get("SequenceNumber"), c.get("CallStatus"))
        for c in emulator.callbacks_sent
        if c.get("CallSid") == call_sid and c.get("CallbackSource") == "call-progress-events"
    ]


def test_it_numbers_every_subscribed_event_from_zero(emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Hello</Say><Pause length='10'/>")
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(60)

    assert status_callbacks(emulator, call.sid) == [
        ("0", "initiated"),
        ("1", "ringing"),
        ("2", "in-progress"),
        ("3", "completed"),
    ]
    completed = next(c for c in fake.to("/status") if c.form["CallStatus"] == "completed").form
    assert completed["CallDuration"] == str(call.call.duration_s())
    assert (completed["Caller"], completed["Called"]) == (CALLER, NUMBER)
    assert completed["Timestamp"].endswith("+0000")


def test_it_sends_only_completed_when_no_events_are_configured(make_emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Hello</Say>")
    emulator = make_emulator(events=())
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)
    assert status_callbacks(emulator, call.sid) == [("0", "completed")]


def test_it_reorders_callbacks_when_asked(make_emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Hello</Say>")
    emulator = make_emulator(reorder_callbacks=True)
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    received = [int(r.form["SequenceNumber"]) for r in fake.to("/status")]
    assert sorted(received) == [0, 1, 2, 3]
    assert received != sorted(received)


def test_it_duplicates_callbacks_when_asked(make_emulator, fake):
    fake.docs["/voice"] = twiml("<Say>Hello</Say>")
    emulator = make_emulator(duplicate_callbacks=True, callback_jitter=2.0)
    call = emulator.place_call(CALLER, NUMBER, CallerScript())
    emulator.advance(30)

    received = [r.form["SequenceNumber"] for r in fake.to("/status") if r.form["CallSid"] == call.sid]
    assert sorted(received) == ["0", "0", "1", "1", "2", "2", "3", "3"]


def test_it_retries_once_on_a_failed_connect_only(make_emulator, fake):
    from queue_app.sim.transport import ConnectFailure

    class Flaky:
        def __init__(self, inner):
            self.inner, self.failures, self.calls = inner, 1, 0

        def request(self, method, url, form, headers):
            self.calls += 1
            if "/status" in url and self.failures:
                self.failures -= 1
                raise ConnectFailure("refused")
            return self.inner.request(method, url, form, headers)

    fake.docs["/voice"] = twiml("<Say>Hello</Say>")
    emulator = make_emulator(events=())
    flaky = Flaky(emulator.webhooks.transport)
    emulator.webhooks.transport = flaky
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(30)

    assert len(fake.to("/status")) == 1
    assert emulator.errors == []
