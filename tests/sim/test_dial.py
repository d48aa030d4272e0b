from __future__ import annotations

from queue_app.sim import CallerScript, ClientDevice, PhoneNumber

from .conftest import BASE, CALLER, NUMBER, twiml

DONE = "/dial-done"


def dial(fake, nouns: str, **attrs: str) -> None:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    fake.docs["/voice"] = twiml(f'<Dial action="{DONE}"{extra}>{nouns}</Dial>')
    fake.docs[DONE] = lambda form: twiml(f"<Say>Dial ended {form['DialCallStatus']}</Say>")


def leg_status(fake, path="/leg-status"):
    return [(r.form["To"], r.form["CallStatus"], r.form["SequenceNumber"]) for r in fake.to(path)]


def test_it_rings_two_clients_and_bridges_the_first_to_answer(emulator, fake):
    cb = f' statusCallback="{BASE}/leg-status" statusCallbackEvent="initiated ringing answered completed"'
    dial(fake, f"<Client{cb}>anna</Client><Client{cb}>bertil</Client>", answerOnBridge="true")
    fake.docs["/leg-status"] = ""
    emulator.register_client("anna", ClientDevice(answer_after=6, script=CallerScript(talk_for=40)))
    emulator.register_client("bertil", ClientDevice(answer_after=3, script=CallerScript(talk_for=20)))

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(2)
    assert call.status == "ringing"  # answerOnBridge: the caller still hears ringing
    emulator.advance(60)

    anna, bertil = sorted(call.children, key=lambda c: c.call.to)
    assert (anna.status, bertil.status) == ("canceled", "completed")
    assert {c.call.direction for c in call.children} == {"outbound-dial"}
    assert {c.call.parent_sid for c in call.children} == {call.sid}
    [done] = fake.to(DONE)
    assert done.form["DialCallStatus"] == "completed"
    assert done.form["DialCallSid"] == bertil.sid
    assert done.form["DialCallDuration"] == "20"
    assert call.heard_texts == ["Dial ended completed"]
    assert leg_status(fake) == [
        ("client:anna", "initiated", "0"),
        ("client:bertil", "initiated", "0"),
        ("client:anna", "ringing", "1"),
        ("client:bertil", "ringing", "1"),
        ("client:bertil", "in-progress", "2"),
        ("client:anna", "canceled", "2"),
        ("client:bertil", "completed", "3"),
    ]


def test_it_reports_no_answer_after_the_dial_timeout(emulator, fake):
    dial(fake, "<Client>anna</Client><Number>+46701111111</Number>", timeout="20")
    emulator.register_client("anna", ClientDevice(mode="ignore"))

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(19)
    assert fake.to(DONE) == []
    emulator.advance(5)

    [done] = fake.to(DONE)
    assert done.form["DialCallStatus"] == "no-answer"
    assert "DialCallSid" not in done.form
    assert {c.status for c in call.children} == {"no-answer"}


def test_it_reports_busy_for_a_busy_number_and_a_declining_client(emulator, fake):
    emulator.register_number("+46702222222", PhoneNumber(mode="busy"))
    emulator.register_client("anna", ClientDevice(mode="decline", answer_after=2))
    dial(fake, "<Number>+46702222222</Number>")
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(10)
    dial(fake, "<Client>anna</Client>")
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(10)

    assert [r.form["DialCallStatus"] for r in fake.to(DONE)] == ["busy", "busy"]


def test_it_ends_an_unregistered_client_with_no_answer_almost_at_once(emulator, fake):
    dial(fake, "<Client>nobody</Client>")
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(2)
    [done] = fake.to(DONE)
    assert done.form["DialCallStatus"] == "no-answer"


def test_it_drops_an_invite_to_a_busy_device_so_the_dial_times_out(emulator, fake):
    emulator.register_client("anna", ClientDevice(mode="busy"))
    dial(fake, "<Client>anna</Client>", timeout="10")
    emulator.place_call(CALLER, NUMBER)
    emulator.advance(9)
    assert fake.to(DONE) == []
    emulator.advance(2)
    assert fake.to(DONE)[0].form["DialCallStatus"] == "no-answer"


def test_it_bridges_after_the_whisper_when_the_operator_presses_1(emulator, fake):
    dial(fake, '<Number url="/whisper">+46703333333</Number>')
    fake.docs["/whisper"] = twiml(
        '<Gather numDigits="1" action="/screen"><Say>Press 1</Say></Gather><Hangup/>'
    )
    fake.docs["/screen"] = lambda form: twiml("" if form["Digits"] == "1" else "<Hangup/>")
    operator = CallerScript(presses=[{"after": 0, "digits": "1"}], talk_for=15)
    emulator.register_number("+46703333333", PhoneNumber(answer_after=4, script=operator))

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(60)

    [child] = call.children
    assert child.heard_texts == ["Press 1"]
    [done] = fake.to(DONE)
    assert (done.form["DialCallStatus"], done.form["DialBridged"]) == ("completed", "true")
    assert done.form["DialCallDuration"] == "15"
    whisper = fake.to("/whisper")[0].form
    assert (whisper["Direction"], whisper["ParentCallSid"]) == ("outbound-dial", call.sid)


def test_it_does_not_bridge_when_the_operator_declines_in_the_whisper(emulator, fake):
    dial(fake, '<Number url="/whisper">+46703333333</Number>')
    fake.docs["/whisper"] = twiml(
        '<Gather numDigits="1" action="/screen"><Say>Press 1</Say></Gather><Hangup/>'
    )
    fake.docs["/screen"] = lambda form: twiml("" if form["Digits"] == "1" else "<Hangup/>")
    operator = CallerScript(presses=[{"after": 0, "digits": "2"}])
    emulator.register_number("+46703333333", PhoneNumber(answer_after=4, script=operator))

    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(60)

    [done] = fake.to(DONE)
    assert done.form["DialBridged"] == "false"
    assert done.form["DialCallStatus"] == emulator.options.whisper_rejected_dial_status
    assert not any(kind == "bridge" for _, kind, _, _ in call.heard)


def test_it_lets_a_voicemail_win_a_parallel_dial(emulator, fake):
    emulator.register_number("+46704444444", PhoneNumber(mode="voicemail"))
    emulator.register_client("anna", ClientDevice(answer_after=2))
    dial(fake, "<Client>anna</Client><Number>+46704444444</Number>")
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(5)
    assert call.bridged_with is not None
    assert call.bridged_with.call.to == "+46704444444"
