"""The offer and transfer webhooks: TwiML parsed with ElementTree, outcomes for each DialCallStatus."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, Offer, OperatorStatus, Queue, Transfer
from queue_app.services import consult, dispatch, operators, transfers
from queue_app.services import offers as offer_service

from ..factories import make_org, make_queue
from ..services.test_dispatch import make_call, make_operator
from ..twilio_helpers import call_params, signed_post, twiml_of

BASE = "http://koe.test"


@dataclass
class Scene:
    queue_id: int
    call_id: int
    call_sid: str
    users: list[int]
    entered: datetime
    group_key: str = ""


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def offered_scene(clock: ManualClock, devices: list[dict[str, Any]] | None = None, **queue: Any) -> Scene:
    now = clock.now()
    devices = devices or [{}]
    with db.transaction() as session:
        org = make_org(session)
        q = make_queue(session, org, name="Växeln", **({"strategy": "ring_all"} | queue))
        users = [make_operator(session, org, q, **d).id for d in devices]
        call = make_call(session, q, now, waited=60)
        scene = Scene(q.id, call.id, call.call_sid, users, call.entered_queue_at)  # type: ignore[arg-type]
    for user_id in users:
        operators.log_in(user_id, [scene.queue_id], now - timedelta(minutes=5))
    legs = dispatch.dispatch_once(now)  # one outbound leg per operator, one group
    assert legs and {leg.user_id for leg in legs} == set(users)
    (scene.group_key,) = {leg.group_key for leg in legs}
    for leg in legs:  # as the worker does once Twilio created each leg
        assert leg.user_id is not None
        offer_service.leg_created(scene.group_key, leg.user_id, f"CA{leg.user_id:032x}")
    return scene


def post(client: FlaskClient, path: str, sid: str, **params: str) -> ET.Element:
    return twiml_of(signed_post(client, path, call_params(sid, **params)))


def state_of(scene: Scene) -> tuple[str, list[str], list[str]]:
    with db.transaction() as session:
        call = session.get(Call, scene.call_id)
        assert call is not None
        offers = session.scalars(select(Offer.state).where(Offer.call_id == scene.call_id).order_by(Offer.id))
        ops = [session.get(OperatorStatus, u).state for u in scene.users]  # type: ignore[union-attr]
        return call.state, list(offers), ops


def misses(user_id: int) -> tuple[int, int, int]:
    with db.transaction() as session:
        s = session.get(OperatorStatus, user_id)
        assert s is not None
        return (s.missed_no_answer, s.missed_declined, s.missed_unreachable)


def test_it_dials_a_browser_operator_by_client(client: FlaskClient, ctx: None, clock: ManualClock) -> None:
    scene = offered_scene(clock, ring_timeout_seconds=25)
    root = post(client, f"/twilio/offer/{scene.group_key}", scene.call_sid, CallStatus="in-progress")
    dial = root.find("Dial")
    assert dial is not None
    prefix = f"{BASE}/twilio/offer/{scene.group_key}"
    assert dial.get("timeout") == "25"
    assert dial.get("action") == f"{prefix}/result"
    assert dial.get("answerOnBridge") == "true"
    (client_el,) = dial.findall("Client")
    assert client_el.text and client_el.text.startswith("op_")
    assert client_el.get("statusCallback") == f"{prefix}/leg?operator={scene.users[0]}"
    assert client_el.get("statusCallbackEvent") == "ringing answered completed"


def test_it_dials_a_phone_operator_with_a_whisper(client: FlaskClient, ctx: None, clock: ManualClock) -> None:
    scene = offered_scene(clock, [{"client_identity": None, "phone_number": "+46701112233"}])
    root = post(client, f"/twilio/offer/{scene.group_key}", scene.call_sid)
    number = root.find("Dial/Number")
    assert number is not None and number.text == "+46701112233"
    whisper_url = f"{BASE}/twilio/offer/{scene.group_key}/whisper?operator={scene.users[0]}"
    assert number.get("url") == whisper_url

    path = whisper_url.removeprefix(BASE)
    leg = call_params("CA" + "e" * 32, To="+46701112233", CallStatus="in-progress")
    whisper = twiml_of(signed_post(client, path, leg))
    gather = whisper.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert (
        gather.get("action")
        == f"{BASE}/twilio/offer/{scene.group_key}/whisper-result?operator={scene.users[0]}"
    )
    say = gather.find("Say")
    assert say is not None and "Växeln" in (say.text or "") and "Tryck 1" in (say.text or "")
    assert [el.tag for el in whisper] == ["Gather", "Hangup"]

    # The phone answering (perhaps its voicemail) is not an answer.
    signed_post(client, f"/twilio/offer/{scene.group_key}/leg?operator={scene.users[0]}", leg)
    assert state_of(scene)[0] == "offered"

    result_path = f"/twilio/offer/{scene.group_key}/whisper-result?operator={scene.users[0]}"
    wrong = twiml_of(signed_post(client, result_path, leg | {"Digits": "2"}))
    assert [el.tag for el in wrong] == ["Hangup"]
    bridged = twiml_of(signed_post(client, result_path, leg | {"Digits": "1"}))
    assert list(bridged) == []
    assert state_of(scene) == ("connected", ["accepted"], ["on_call"])


def test_it_sends_the_caller_back_to_the_queue_when_the_offer_is_over(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    dispatch.reclaim_expired_offers(clock.now() + timedelta(minutes=5))
    root = post(client, f"/twilio/offer/{scene.group_key}", scene.call_sid)
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text == f"{BASE}/twilio/enqueue"


def test_it_refuses_an_unsigned_request(client: FlaskClient, ctx: None, clock: ManualClock) -> None:
    scene = offered_scene(clock)
    response = client.post(f"/twilio/offer/{scene.group_key}/result", data={"DialCallStatus": "no-answer"})
    assert response.status_code == 403
    assert state_of(scene)[0] == "offered"


def test_it_connects_the_operator_whose_browser_answered_then_wraps_up(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{}, {}], wrap_up_seconds=45)
    leg_path = f"/twilio/offer/{scene.group_key}/leg?operator={scene.users[1]}"
    for _ in range(2):  # a duplicate callback changes nothing twice
        post(client, leg_path, "CA" + "f" * 32, CallStatus="in-progress", To="client:x")
    assert state_of(scene) == ("connected", ["canceled", "accepted"], ["available", "on_call"])

    clock.advance(120)
    for _ in range(2):  # a retried action changes nothing twice
        root = post(
            client,
            f"/twilio/offer/{scene.group_key}/result",
            scene.call_sid,
            DialCallStatus="completed",
            CallStatus="in-progress",
            DialBridged="true",
        )
        assert [el.tag for el in root] == ["Hangup"]
    assert state_of(scene) == ("completed", ["canceled", "accepted"], ["available", "wrap_up"])
    with db.transaction() as session:
        status = session.get(OperatorStatus, scene.users[1])
        assert status is not None and status.wrap_up_until == clock.now() + timedelta(seconds=45)
        call = session.get(Call, scene.call_id)
        assert call is not None and call.answered_by_id == scene.users[1] and call.ended_at == clock.now()


@pytest.mark.parametrize(
    ("dial_status", "offer_state", "counted"),
    [
        ("no-answer", "no_answer", (1, 0, 0)),
        ("busy", "declined", (0, 1, 0)),
        ("failed", "unreachable", (0, 0, 1)),
        ("canceled", "canceled", (0, 0, 0)),
    ],
)
def test_it_returns_caller_to_their_old_place_after_missed_offer(
    client: FlaskClient,
    ctx: None,
    clock: ManualClock,
    dial_status: str,
    offer_state: str,
    counted: tuple[int, ...],
) -> None:
    scene = offered_scene(clock)
    for _ in range(2):  # idempotent: the retry gets the same answer and counts nothing twice
        root = post(
            client,
            f"/twilio/offer/{scene.group_key}/result",
            scene.call_sid,
            DialCallStatus=dial_status,
            CallStatus="in-progress",
        )
        redirect = root.find("Redirect")
        assert redirect is not None and redirect.text == f"{BASE}/twilio/enqueue"
        assert redirect.get("method") == "POST"
    assert state_of(scene) == ("waiting", [offer_state], ["available"])
    assert misses(scene.users[0]) == counted
    with db.transaction() as session:
        call = session.get(Call, scene.call_id)
        assert call is not None and call.entered_queue_at == scene.entered


def test_it_cancels_the_offers_when_the_caller_hangs_up_while_ringing(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{}, {}])
    root = post(
        client,
        f"/twilio/offer/{scene.group_key}/result",
        scene.call_sid,
        DialCallStatus="no-answer",
        CallStatus="completed",
    )
    assert list(root) == []
    _call_state, offers, ops = state_of(scene)
    assert offers == ["canceled", "canceled"] and ops == ["available", "available"]
    assert misses(scene.users[0]) == (0, 0, 0)


def test_it_frees_an_operator_who_declines_while_others_still_ring(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{}, {}])
    post(
        client,
        f"/twilio/offer/{scene.group_key}/leg?operator={scene.users[0]}",
        "CA" + "1" * 32,
        CallStatus="busy",
    )
    assert state_of(scene) == ("offered", ["declined", "ringing"], ["available", "ringing"])
    assert misses(scene.users[0]) == (0, 1, 0)


def test_it_logs_out_an_operator_after_the_queues_missed_offers(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, max_missed_offers=1)
    post(
        client,
        f"/twilio/offer/{scene.group_key}/result",
        scene.call_sid,
        DialCallStatus="no-answer",
        CallStatus="in-progress",
    )
    assert state_of(scene) == ("waiting", ["no_answer"], ["offline"])
    view = operators.view(scene.users[0])
    assert (
        view is not None and view.logged_out_reason == operators.REASON_MISSED_OFFERS and view.queue_ids == ()
    )


def test_it_treats_a_completed_dial_nobody_confirmed_as_no_answer(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{"client_identity": None, "phone_number": "+46701112233"}])
    root = post(
        client,
        f"/twilio/offer/{scene.group_key}/result",
        scene.call_sid,
        DialCallStatus="completed",
        CallStatus="in-progress",
        DialBridged="false",
    )
    assert root.find("Redirect") is not None
    assert state_of(scene) == ("waiting", ["no_answer"], ["available"])


# --- blind transfer ------------------------------------------------------------------------------


def connected_scene(client: FlaskClient, clock: ManualClock) -> Scene:
    scene = offered_scene(clock)
    post(
        client,
        f"/twilio/offer/{scene.group_key}/leg?operator={scene.users[0]}",
        "CA" + "2" * 32,
        CallStatus="in-progress",
    )
    assert state_of(scene)[0] == "connected"
    return scene


def test_it_transfers_blind_and_completes_when_the_colleague_answers(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = connected_scene(client, clock)
    transfer_id = transfers.start_blind_transfer(
        scene.call_id, scene.users[0], "+46 8 123 456 78", clock.now()
    )
    (redirect,) = transfers.claim_due(clock.now())
    assert redirect.path == f"/twilio/transfer/{transfer_id}"
    assert transfers.claim_due(clock.now()) == []  # claimed once

    root = post(client, redirect.path, scene.call_sid)
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{BASE}/twilio/transfer/{transfer_id}/result"
    assert dial.get("timeout") == "20"
    assert dial.get("callerId") == "+46701234567"
    assert dial.findtext("Number") == "+46812345678"
    root = post(client, f"{redirect.path}/result", scene.call_sid, DialCallStatus="completed")
    assert [el.tag for el in root] == ["Hangup"]
    call_state, _offers, ops = state_of(scene)
    assert call_state == "completed" and ops == ["wrap_up"]


def test_it_recalls_to_the_transferring_operator_on_no_answer(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = connected_scene(client, clock)
    transfer_id = transfers.start_blind_transfer(scene.call_id, scene.users[0], "+46812345678", clock.now())
    operators.end_wrap_up(scene.users[0], clock.now())
    root = post(
        client,
        f"/twilio/transfer/{transfer_id}/result",
        scene.call_sid,
        DialCallStatus="no-answer",
        CallStatus="in-progress",
    )
    redirect = root.find("Redirect")
    assert redirect is not None and (redirect.text or "").startswith(f"{BASE}/twilio/offer/")
    assert state_of(scene)[0] == "offered"
    with db.transaction() as session:
        transfer = session.get(Transfer, transfer_id)
        assert transfer is not None and (transfer.state, transfer.recall_reason) == ("recalled", "no_answer")


def test_it_recalls_to_the_front_of_the_queue_when_the_operator_is_busy(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = connected_scene(client, clock)
    transfer_id = transfers.start_blind_transfer(scene.call_id, scene.users[0], "+46812345678", clock.now())
    root = post(
        client,
        f"/twilio/transfer/{transfer_id}/result",
        scene.call_sid,
        DialCallStatus="no-answer",
        CallStatus="in-progress",
    )
    assert root.findtext("Redirect") == f"{BASE}/twilio/enqueue"
    with db.transaction() as session:
        call = session.get(Call, scene.call_id)
        assert (
            call is not None and call.state == "waiting" and call.priority == transfers.RECALL_PRIORITY_BOOST
        )


def test_it_camps_on_a_busy_colleague(client: FlaskClient, ctx: None, clock: ManualClock) -> None:
    scene = connected_scene(client, clock)
    transfer_id = transfers.start_blind_transfer(scene.call_id, scene.users[0], "+46812345678", clock.now())
    root = post(
        client,
        f"/twilio/transfer/{transfer_id}/result",
        scene.call_sid,
        DialCallStatus="busy",
        CallStatus="in-progress",
    )
    enqueue = root.find("Enqueue")
    assert enqueue is not None and enqueue.text == f"koe-campon-{transfer_id}"
    assert root.find("Say") is not None
    assert state_of(scene)[0] == "camped_on"
    # The retry is due after CAMP_ON_RETRY_SECONDS and dials again.
    assert transfers.claim_due(clock.now()) == []
    (retry,) = transfers.claim_due(clock.now() + timedelta(seconds=30))
    assert retry.path == f"/twilio/transfer/{transfer_id}"
    assert state_of(scene)[0] == "transferring"


def test_it_refuses_to_transfer_a_call_the_operator_is_not_on(ctx: None, clock: ManualClock) -> None:
    with db.transaction() as session:
        org = make_org(session)
        q = make_queue(session, org)
        call = make_call(session, q, clock.now())
        ids = (call.id, make_operator(session, org, q).id)
        assert session.get(Queue, q.id) is not None
    with pytest.raises(transfers.TransferError, match="connected to"):
        transfers.start_blind_transfer(ids[0], ids[1], "+46812345678", clock.now())
    with pytest.raises(transfers.TransferError, match="international form"):
        transfers.start_blind_transfer(ids[0], ids[1], "08-123", clock.now())


# --- a queue offer: each operator rings on a leg of their own, the caller waits in their queue ----


def leg_post(client: FlaskClient, scene: Scene, route: str, user_id: int, **params: str) -> ET.Element:
    path = f"/twilio/offer/{scene.group_key}/{route}?operator={user_id}"
    return post(client, path, f"CA{user_id:032x}", **params)


def in_queue(scene: Scene) -> None:
    """The caller's first waitUrl fetch: they are in their own Twilio queue now."""
    with db.transaction() as session:
        call = session.get(Call, scene.call_id)
        assert call is not None
        call.announcement_state = {"joined_at": "2026-11-25T09:00:00+00:00"}


def test_the_first_browser_to_answer_bridges_with_the_caller_from_their_queue(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{}, {}])
    in_queue(scene)
    first, second = scene.users
    root = leg_post(client, scene, "answer", first, CallStatus="in-progress")
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{BASE}/twilio/offer/{scene.group_key}/done?operator={first}"
    queue = dial.find("Queue")
    assert queue is not None and queue.text == f"koe-caller-{scene.call_id}"
    assert state_of(scene) == ("connected", ["accepted", "canceled"], ["on_call", "available"])
    # The other browser answered a moment too late: its leg is hung up, nothing else changes.
    late = leg_post(client, scene, "answer", second, CallStatus="in-progress")
    assert [el.tag for el in late] == ["Hangup"]
    assert state_of(scene) == ("connected", ["accepted", "canceled"], ["on_call", "available"])


@pytest.mark.parametrize("answerer", [0, 1])
def test_either_of_two_operators_rung_together_is_bridged_and_ends_the_talk(
    client: FlaskClient, ctx: None, clock: ManualClock, answerer: int
) -> None:
    """Whichever operator answers, whatever their offer's id, and though Twilio's "answered" status
    callback comes before the leg's own TwiML request (both are sent at the answer)."""
    scene = offered_scene(clock, [{}, {}])
    in_queue(scene)
    user = scene.users[answerer]
    leg_post(client, scene, "leg", user, CallStatus="in-progress")
    root = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    assert root.find("Dial/Queue") is not None
    assert state_of(scene)[0] == "connected"
    done = leg_post(client, scene, "done", user, DialCallStatus="completed", CallStatus="in-progress")
    assert [el.tag for el in done] == ["Hangup"]
    assert state_of(scene)[0] == "completed"


def test_an_answer_during_the_welcome_waits_until_the_caller_is_in_their_queue(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    (user,) = scene.users
    root = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    assert [el.tag for el in root] == ["Pause", "Redirect"]
    assert root[1].text == f"{BASE}/twilio/offer/{scene.group_key}/answer?operator={user}"
    assert state_of(scene)[0] == "connected"  # taken: nobody else rings for this caller
    in_queue(scene)
    again = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    assert again.find("Dial/Queue") is not None


def test_the_bridge_is_recorded_when_the_queue_url_is_asked_and_brings_a_waiting_consult_forward(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    in_queue(scene)
    (user,) = scene.users
    root = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    queue = root.find("Dial/Queue")
    assert queue is not None
    assert queue.get("url") == f"{BASE}/twilio/offer/{scene.group_key}/bridged?operator={user}"
    now = clock.now()
    consult_id = consult.start_consult(scene.call_id, user, "+46701112233", now)
    with db.transaction() as session:
        assert offer_service.bridge_pending(session, scene.call_id, now)
    assert consult.claim_due(now) == []  # not before the bridge: it would strand the caller
    with db.transaction() as session:
        postponed = session.get_one(Transfer, consult_id).next_attempt_at
        assert postponed is not None and postponed > now

    # The Queue url is asked on the caller's side (CallSid is theirs); retried, it changes nothing.
    for _ in range(2):
        path = f"/twilio/offer/{scene.group_key}/bridged?operator={user}"
        done = post(client, path, scene.call_sid, QueueSid="QU" + "1" * 32, DequeingCallSid=f"CA{user:032x}")
        assert list(done) == []
    settled = now + timedelta(seconds=offer_service.BRIDGE_SETTLE_SECONDS)
    with db.transaction() as session:
        (bridged_at,) = session.scalars(select(Offer.bridged_at).where(Offer.call_id == scene.call_id))
        assert bridged_at == now
        assert session.get_one(Call, scene.call_id).twilio_queue_sid == "QU" + "1" * 32  # to delete later
        assert session.get_one(Transfer, consult_id).next_attempt_at == settled
        assert not offer_service.bridge_pending(session, scene.call_id, settled)
    (step,) = consult.claim_due(settled)
    assert step.step is consult.Step.GATHER and step.operator_sid == f"CA{user:032x}"


def test_a_leg_still_waiting_for_the_welcome_hangs_up_once_the_call_was_transferred(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    (user,) = scene.users
    root = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    assert [el.tag for el in root] == ["Pause", "Redirect"]
    transfers.start_blind_transfer(scene.call_id, user, "+46812345678", clock.now())
    again = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    assert [el.tag for el in again] == ["Hangup"]
    assert state_of(scene)[:2] == ("transferring", ["accepted"])


def test_a_phone_operator_takes_the_call_only_by_pressing_1(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{"client_identity": None, "phone_number": "+46701112233"}])
    in_queue(scene)
    (user,) = scene.users
    root = leg_post(client, scene, "answer", user, CallStatus="in-progress")
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    say = gather.find("Say")
    assert say is not None and "Växeln" in (say.text or "") and "Tryck 1" in (say.text or "")
    assert state_of(scene)[0] == "offered"  # a voicemail answers too: not yet taken
    taken = leg_post(client, scene, "confirm", user, Digits="1")
    assert taken.find("Dial/Queue") is not None
    assert state_of(scene) == ("connected", ["accepted"], ["on_call"])


def test_a_phone_whose_answer_never_presses_1_is_a_missed_offer(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{"client_identity": None, "phone_number": "+46701112233"}])
    (user,) = scene.users
    leg_post(client, scene, "answer", user, CallStatus="in-progress")
    root = leg_post(client, scene, "confirm", user)  # the Gather timed out: no Digits
    assert [el.tag for el in root] == ["Hangup"]
    assert state_of(scene)[0] == "waiting"  # the caller never left their queue
    assert misses(user) == (1, 0, 0)


def test_a_legs_end_reported_before_the_worker_recorded_the_leg_still_frees_the_caller(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    """Twilio may report a leg's end before the worker has stored its SID (or the worker died
    between the create and the store): the callback's Direction says it is our own leg."""
    scene = offered_scene(clock, [{}])
    (user,) = scene.users
    with db.transaction() as session:
        session.execute(update(Offer).where(Offer.call_id == scene.call_id).values(leg_sid=None))
    leg_post(client, scene, "leg", user, CallStatus="no-answer", Direction="outbound-api")
    assert state_of(scene) == ("waiting", ["no_answer"], ["available"])  # not until the deadline
    with db.transaction() as session:
        assert session.scalar(select(Offer.leg_sid).where(Offer.call_id == scene.call_id)) == f"CA{user:032x}"


def test_the_last_leg_ending_unanswered_leaves_the_caller_waiting_with_their_place(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, [{}, {}])
    first, second = scene.users
    leg_post(client, scene, "leg", first, CallStatus="busy")
    assert state_of(scene) == ("offered", ["declined", "ringing"], ["available", "ringing"])
    leg_post(client, scene, "leg", second, CallStatus="no-answer")
    leg_post(client, scene, "leg", second, CallStatus="no-answer")  # Twilio retried it
    assert state_of(scene) == ("waiting", ["declined", "no_answer"], ["available", "available"])
    assert misses(first) == (0, 1, 0) and misses(second) == (1, 0, 0)
    with db.transaction() as session:
        call = session.get(Call, scene.call_id)
        assert call is not None and call.entered_queue_at == scene.entered


def test_the_talk_ends_once_however_many_sides_report_it(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock, wrap_up_seconds=30)
    in_queue(scene)
    (user,) = scene.users
    leg_post(client, scene, "answer", user, CallStatus="in-progress")
    done = leg_post(client, scene, "done", user, DialCallStatus="completed")
    assert [el.tag for el in done] == ["Hangup"]
    assert state_of(scene) == ("completed", ["accepted"], ["wrap_up"])
    # The caller's Enqueue action and the leg's status callback say the same: nothing changes.
    queue_result = post(client, "/twilio/queue-result", scene.call_sid, QueueResult="bridged", QueueTime="9")
    assert list(queue_result) == []
    leg_post(client, scene, "leg", user, CallStatus="completed")
    assert state_of(scene) == ("completed", ["accepted"], ["wrap_up"])


def test_a_bridge_that_never_formed_is_tried_again_while_the_caller_is_there(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    in_queue(scene)
    (user,) = scene.users
    leg_post(client, scene, "answer", user, CallStatus="in-progress")
    again = leg_post(client, scene, "done", user, DialCallStatus="no-answer")
    assert [el.tag for el in again] == ["Pause", "Redirect"]
    assert state_of(scene) == ("connected", ["accepted"], ["on_call"])


def test_an_unknown_offer_hangs_up_the_operators_leg(
    client: FlaskClient, ctx: None, clock: ManualClock
) -> None:
    scene = offered_scene(clock)
    root = post(client, "/twilio/offer/no-such-group/answer?operator=1", scene.call_sid)
    assert [el.tag for el in root] == ["Hangup"]
    assert state_of(scene)[0] == "offered"
    # The Queue url of an unknown group (or with no operator): nothing is said, nothing changes.
    for path in (
        "/twilio/offer/no-such-group/bridged?operator=1",
        f"/twilio/offer/{scene.group_key}/bridged",
    ):
        assert list(post(client, path, scene.call_sid, QueueSid="QU" + "2" * 32)) == []
    with db.transaction() as session:
        assert session.scalars(select(Offer.bridged_at).where(Offer.call_id == scene.call_id)).all() == [None]
        assert session.get_one(Call, scene.call_id).twilio_queue_sid is None
