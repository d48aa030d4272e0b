from __future__ import annotations

from twilio.rest import Client

from queue_app.sim import CallerScript, EmulatorHttpClient

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BASE, CALLER, NUMBER, twiml

WAIT = twiml('<Say>You are number {pos}</Say><Pause length="10"/>')


def enqueue_app(fake, action="/after"):
    fake.docs["/voice"] = twiml(
        f'<Enqueue waitUrl="/wait" action="{action}">support</Enqueue><Say>After</Say>'
    )
    fake.docs["/wait"] = lambda form: WAIT.format(pos=form["QueuePosition"])
    fake.docs["/after"] = lambda form: twiml(f"<Say>Result {form['QueueResult']}</Say>")


def test_it_fetches_the_wait_url_in_a_loop_with_queue_parameters(emulator, fake):
    enqueue_app(fake)
    first = emulator.place_call(CALLER, NUMBER)
    emulator.advance(5)
    second = emulator.place_call("+46709999999", NUMBER)
    emulator.advance(30)

    waits = [r.form for r in fake.to("/wait") if r.form["CallSid"] == second.sid]
    assert len(waits) == 3  # every ~11 s the document ends and is fetched again
    assert waits[0]["QueuePosition"] == "2"
    assert waits[0]["CurrentQueueSize"] == "2"
    assert waits[0]["MaxQueueSize"] == "1000"
    assert waits[0]["QueueSid"].startswith("QU")
    loop_s = emulator.say_length("You are number 2") + 10
    assert [w["QueueTime"] for w in waits] == ["0", str(int(loop_s)), str(int(2 * loop_s))]
    assert waits[1]["AvgQueueTime"] == str((int(5 + loop_s) + int(loop_s)) // 2)
    assert first.heard_texts[0] == "You are number 1"
    assert emulator.queue_by_name("support").members == [first.sid, second.sid]


def test_it_leaves_the_queue_on_leave_and_requests_the_action(emulator, fake):
    enqueue_app(fake)
    fake.docs["/wait"] = lambda form: twiml(
        '<Gather numDigits="1" action="/choice"><Say>Press 1 to leave</Say></Gather>'
    )
    fake.docs["/choice"] = twiml("<Leave/>")
    call = emulator.place_call(CALLER, NUMBER, CallerScript(presses=[{"after": 0, "digits": "1"}]))
    emulator.advance(30)

    [after] = fake.to("/after")
    assert after.form["QueueResult"] == "leave"
    assert call.heard_texts == ["Press 1 to leave", "Result leave"]
    assert emulator.queue_by_name("support").members == []


def test_it_reports_hangup_when_the_caller_gives_up(emulator, fake):
    enqueue_app(fake)
    call = emulator.place_call(CALLER, NUMBER, CallerScript(patience=25))
    emulator.advance(40)

    assert call.status == "completed"
    [after] = fake.to("/after")
    assert after.form["QueueResult"] == "hangup"
    assert after.form["QueueTime"] == "25"


def test_it_dequeues_a_caller_redirected_by_rest(emulator, fake):
    enqueue_app(fake)
    fake.docs["/connect"] = twiml("<Say>Connecting you</Say>")
    call = emulator.place_call(CALLER, NUMBER)
    emulator.advance(12)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EmulatorHttpClient(emulator))
    queue_sid = emulator.queue_by_name("support").sid
    members = client.queues(queue_sid).members.list()
    assert [(m.call_sid, m.position) for m in members] == [(call.sid, 1)]
    client.calls(call.sid).update(url=f"{BASE}/connect", method="POST")
    emulator.advance(10)

    [after] = fake.to("/after")
    assert after.form["QueueResult"] == "redirected"
    assert call.heard_texts[-1] == "Connecting you"
    assert "Result redirected" not in call.heard_texts  # the action's reply is ignored
    assert client.queues(queue_sid).fetch().current_size == 0


def test_it_dequeues_the_front_member_through_the_members_resource(emulator, fake):
    enqueue_app(fake)
    fake.docs["/connect"] = twiml("<Say>Front of the line</Say>")
    first = emulator.place_call(CALLER, NUMBER)
    emulator.place_call("+46709999999", NUMBER)
    emulator.advance(3)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EmulatorHttpClient(emulator))
    queue_sid = emulator.queue_by_name("support").sid
    member = client.queues(queue_sid).members("Front").update(url=f"{BASE}/connect")
    emulator.advance(5)

    assert member.call_sid == first.sid
    assert first.heard_texts[-1] == "Front of the line"


def test_it_bridges_a_dial_queue_to_the_head_of_the_queue(emulator, fake):
    enqueue_app(fake)
    fake.docs["/agent"] = twiml(
        '<Dial action="/agent-done"><Queue url="/about-to-connect">support</Queue></Dial>'
    )
    fake.docs["/about-to-connect"] = twiml("<Say>Connecting to an agent</Say>")
    fake.docs["/agent-done"] = twiml("<Hangup/>")
    emulator.add_number("+46800000002", f"{BASE}/agent")
    caller = emulator.place_call(CALLER, NUMBER)
    emulator.advance(20)

    agent = emulator.place_call("+46700000042", "+46800000002", CallerScript(talk_for=30))
    emulator.advance(60)

    [done] = fake.to("/agent-done")
    assert done.form["DialCallStatus"] == "completed"
    assert done.form["DialCallSid"] == caller.sid
    assert done.form["DialCallDuration"] == "30"
    [after] = fake.to("/after")
    assert after.form["QueueResult"] == "bridged"
    assert caller.heard_texts[-2:] == ["Connecting to an agent", "Result bridged"]
    assert agent.status == "completed"


def test_it_answers_queue_full_when_the_queue_is_full(emulator, fake):
    fake.docs["/voice"] = twiml('<Enqueue maxQueueSize="1" waitUrl="" action="/after">tiny</Enqueue>')
    fake.docs["/after"] = lambda form: twiml(f"<Say>{form['QueueResult']}</Say>")
    emulator.place_call(CALLER, NUMBER)
    second = emulator.place_call("+46709999999", NUMBER)
    emulator.advance(5)
    assert second.heard_texts == ["queue-full"]
