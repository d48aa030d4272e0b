"""The live demo's server side: a newcomer's phone in the browser, and the operator's browser device.

The phone: the organisation's own numbers (PhoneNumber rows) are routed on the app's emulator to the
voice webhook; `dial` places a call from a demo caller number, and the page polls `call_view` for
what the caller hears (each Say and Play as it happens), presses digits and hangs up.

The operator's browser in emulator mode: `static/js/emulator_device.js` offers the Voice SDK's
Device/Call interface and talks to these functions. `register` puts a `BrowserDevice` on the
emulator under the operator's client identity; a `<Dial><Client>` to it rings until the browser
accepts (the leg is answered and bridged, as `executor.dialled` does it), rejects (the Dial sees
`busy`, twilio.md §6) or the Dial times out. A device that stops polling for `DEVICE_TIMEOUT_S` is
unregistered again, as a closed tab would be.

Everything takes the scheduler's lock: in real time the emulator's thread runs events under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from ..extensions import db
from .emulator import Emulator
from .executor import Step, run
from .model import Call
from .parties import CallerScript, ClientDevice, RingOutcome

DEMO_CALLER = "+46701234567"
DEVICE_TIMEOUT_S = 30.0
TOKEN_SALT = "koe-emulator-device"
TOKEN_MAX_AGE_S = 24 * 3600


class DemoError(Exception):
    """Something the page asked that cannot be done; the message is for the page."""


# --- the phone ----------------------------------------------------------------------------------


def demo_numbers(organisation_id: int) -> list[dict[str, Any]]:
    """The organisation's numbers with the queue each rings."""
    from ..models import PhoneNumber, Queue

    with db.transaction() as session:
        rows = session.execute(
            select(PhoneNumber.number, PhoneNumber.label, Queue.name)
            .outerjoin(Queue, Queue.id == PhoneNumber.queue_id)
            .where(PhoneNumber.organisation_id == organisation_id)
            .order_by(PhoneNumber.number)
        ).all()
    return [{"number": n, "label": label, "queue": queue} for n, label, queue in rows]


def route_numbers(app: Flask, emulator: Emulator, numbers: list[str]) -> None:
    """Calls to these numbers reach the app's voice webhook (once per number)."""
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    with emulator.scheduler.lock:
        for number in numbers:
            if number not in emulator.numbers:
                emulator.add_number(number, f"{base}/twilio/voice", status_callback=f"{base}/twilio/status")


def dial(app: Flask, emulator: Emulator, organisation_id: int, to: str, from_: str = DEMO_CALLER) -> str:
    """Place a call to one of the organisation's numbers; its sid."""
    known = {n["number"] for n in demo_numbers(organisation_id)}
    if to not in known:
        raise DemoError("Not a number of your organisation.")
    route_numbers(app, emulator, [to])
    handle = emulator.place_call(from_ or DEMO_CALLER, to, CallerScript())
    return handle.sid


def _call(emulator: Emulator, sid: str) -> Call:
    call = emulator.state.calls.get(sid)
    if call is None:
        raise DemoError("No such call.")
    return call


def call_view(emulator: Emulator, sid: str, since: int = 0) -> dict[str, Any]:
    """What the caller has heard from item `since` on, and the call's state."""
    with emulator.scheduler.lock:
        call = _call(emulator, sid)
        heard = [
            {
                "at": h.at.isoformat(),
                "kind": h.kind,
                "content": h.content,
                "language": h.language or h.voice,
            }
            for h in call.heard[max(0, since) :]
        ]
        return {
            "sid": call.sid,
            "status": call.status,
            "ended": call.ended,
            "listening": bool(call.listening),
            "bridged": call.bridged_with is not None,
            "heard": heard,
            "next": len(call.heard),
        }


def press(emulator: Emulator, sid: str, digits: str) -> None:
    if not digits or any(d not in "0123456789*#" for d in digits):
        raise DemoError("Only 0-9, * and # can be pressed.")
    with emulator.scheduler.lock:
        emulator.press(_call(emulator, sid), digits)


def hang_up(emulator: Emulator, sid: str) -> None:
    with emulator.scheduler.lock:
        emulator.hang_up(_call(emulator, sid))


# --- the operator's browser ---------------------------------------------------------------------


def client_identity(user_id: int) -> str | None:
    from ..models import User

    with db.transaction() as session:
        return session.scalar(select(User.client_identity).where(User.id == user_id))


def device_token(app: Flask, identity: str) -> str:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).dumps({"identity": identity})


def token_identity(app: Flask, token: str) -> str:
    try:
        data = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).loads(
            token, max_age=TOKEN_MAX_AGE_S
        )
    except BadSignature as exc:
        raise DemoError("Invalid device token.") from exc
    return str(data["identity"])


@dataclass(frozen=True)
class BrowserDevice(ClientDevice):
    """A browser tab: rings until the person accepts or rejects (or the Dial times out)."""

    last_seen: dict[str, datetime] = field(default_factory=dict, compare=False, repr=False)

    def ring(self, on_a_call: bool, unregistered_after_s: float = 0.5) -> RingOutcome:
        if not self.registered:
            return RingOutcome("no-answer", unregistered_after_s)
        # Ringing until the page acts; a busy Device drops the invite silently too (twilio.md §6),
        # and `device_view` shows no new call to a device that is on one.
        return RingOutcome("silent", 0.0)


def register(emulator: Emulator, identity: str) -> None:
    with emulator.scheduler.lock:
        device = emulator.clients.get(identity)
        if not isinstance(device, BrowserDevice) or not device.registered:
            device = BrowserDevice()
            emulator.register_client(identity, device)
        device.last_seen["at"] = emulator.now()


def unregister(emulator: Emulator, identity: str) -> None:
    with emulator.scheduler.lock:
        if isinstance(emulator.clients.get(identity), BrowserDevice):
            emulator.clients.pop(identity, None)


def _legs(emulator: Emulator, identity: str) -> Iterator[Call]:
    for call in emulator.state.calls.values():
        # A child of a <Dial><Client>, or an outbound call of the app's own to the browser.
        if call.client_identity == identity and call.direction in ("outbound-dial", "outbound-api"):
            yield call


def device_view(emulator: Emulator, identity: str, known: list[str]) -> dict[str, Any]:
    """The device's calls: ringing ones (incoming) and the fate of the ones the page knows."""
    with emulator.scheduler.lock:
        device = emulator.clients.get(identity)
        if not isinstance(device, BrowserDevice):
            return {"registered": False, "calls": []}
        now = emulator.now()
        device.last_seen["at"] = now
        calls = []
        for leg in _legs(emulator, identity):
            if leg.sid not in known and (leg.ended or leg.answered):
                continue
            parent = emulator.state.calls.get(leg.parent_sid or "")
            calls.append(
                {
                    "sid": leg.sid,
                    "status": leg.status,
                    "answered": leg.answered,
                    "ended": leg.ended,
                    "parameters": {
                        "CallSid": leg.sid,
                        "From": leg.from_,
                        "To": leg.to,
                        "ParentCallSid": leg.parent_sid or "",
                        "ParentFrom": parent.from_ if parent else "",
                        **leg.extra_params,
                    },
                }
            )
        return {"registered": True, "calls": calls}


def _leg_of(emulator: Emulator, identity: str, sid: str) -> Call:
    leg = emulator.state.calls.get(sid)
    if leg is None or leg.client_identity != identity:
        raise DemoError("No such call for this device.")
    return leg


def accept(emulator: Emulator, identity: str, sid: str) -> None:
    """`call.accept()`: answer the ringing leg; the caller is bridged once the Dial picks it."""
    with emulator.scheduler.lock:
        leg = _leg_of(emulator, identity, sid)
        if leg.ended or leg.answered:
            raise DemoError("This call is no longer ringing.")
        if leg.direction == "outbound-api":
            if leg.process is not None:
                leg.process.stop()
            run(emulator, leg, _answered_own_call)
            return
        parent = emulator.state.calls.get(leg.parent_sid or "")
        if parent is None or parent.process is None:
            raise DemoError("This call has no caller any more.")
        if leg.process is not None:
            leg.process.stop()  # the ringing that waited for the browser
        run(emulator, leg, lambda runner: _answered(runner, parent))


def _answered(runner: Any, parent: Call) -> Step:
    """What `executor.LegRunner.dialled` does once its leg answers (a browser has no whisper)."""
    emu, call = runner.emu, runner.call
    told = False
    try:
        emu.mark_answered(call)
        told = True
        parent.process.wake("child_answered", call.sid)
        yield from runner.wait(None, frozenset({"won"}))
        told = True
        parent.process.wake("child_ready", call.sid)
        yield from runner.wait(None, frozenset({"bridge_end"}))
        emu.end_call(call, "completed")
    finally:
        if call.ended and not told and parent.process is not None:
            parent.process.wake("child_ended", call.sid)


def _answered_own_call(runner: Any) -> Step:
    """What `executor.LegRunner.outbound` does once its far end answers: run the call's TwiML."""
    emu, call = runner.emu, runner.call
    emu.mark_answered(call)
    if call.twiml is not None:
        yield from runner.main_twiml(call.twiml)
    elif call.url:
        yield from runner.main(call.url, call.method)


def reject(emulator: Emulator, identity: str, sid: str) -> None:
    """`call.reject()`: the Dial sees `busy` (twilio.md §6)."""
    with emulator.scheduler.lock:
        leg = _leg_of(emulator, identity, sid)
        if not leg.ended and not leg.answered:
            emulator.end_call(leg, "busy")


def disconnect(emulator: Emulator, identity: str, sid: str) -> None:
    """`call.disconnect()`: the operator hangs up (a ringing leg is rejected)."""
    with emulator.scheduler.lock:
        leg = _leg_of(emulator, identity, sid)
        if leg.answered:
            emulator.hang_up(leg)
        elif not leg.ended:
            emulator.end_call(leg, "busy")


def drop_stale_devices(emulator: Emulator, timeout_s: float = DEVICE_TIMEOUT_S) -> int:
    """Unregister browser devices that stopped polling (a closed tab)."""
    with emulator.scheduler.lock:
        now = emulator.now()
        stale = [
            identity
            for identity, device in emulator.clients.items()
            if isinstance(device, BrowserDevice)
            and now - device.last_seen.get("at", now) > timedelta(seconds=timeout_s)
        ]
        for identity in stale:
            emulator.clients.pop(identity, None)
        return len(stale)
