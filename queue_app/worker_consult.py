"""The worker's half of a consult: the REST requests of each step (services/consult.py), after commit.

GATHER  redirect the operator's leg (their own call, or the child of the caller's Dial) into the
        conference
DIAL    keep the conference when the operator leaves (no operator there: recalled), hold the
        caller with the queue's hold music, and add the colleague
CONNECT the colleague now ends the conference when leaving; the caller is taken off hold; the
        operator is removed
RESUME  hang up the colleague's leg (returned, caller gone), take the caller off hold, let the
        operator's leaving end the call again, and tell the operator why they are back; or, when
        the operator left, move the caller to `/twilio/consult/<id>/recall`
CHECK   the safety net: list the conference's participants; a caller with nobody connected with
        them is recalled (a colleague who still rings is hung up)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from flask import current_app
from twilio.base.exceptions import TwilioRestException

from .services import consult
from .services.consult import CALLER, OPERATOR, ConsultStep, Step
from .telephony.rest import TwilioRest
from .telephony.twiml import absolute

log = logging.getLogger("koe.worker.consult")

# Twilio: 20404 no such call or participant, 21220 the call is over.
GONE_CODES = frozenset({20404, 21220})


class OperatorGone(Exception):
    """GATHER or DIAL: the operator's leg has ended (or never reached the conference): the caller
    would be left alone, so the call is recalled (services/consult.py `operator_gone`)."""


def perform(steps: list[ConsultStep], now: datetime, rest: TwilioRest | None = None) -> int:
    """Run each step; a failed GATHER or DIAL ends the consult (the operator sees why)."""
    if not steps:
        return 0
    rest = rest or TwilioRest.from_app()
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    failed = 0
    for step in steps:
        try:
            _STEPS[step.step](rest, base, step, now)
        except OperatorGone:
            log.info("consult %s: %s found the operator's leg gone", step.transfer_id, step.step)
            consult.operator_gone(step.transfer_id, step.step, now)
        except Exception as exc:  # one consult must not stop the others
            failed += 1
            reason = f"{type(exc).__name__}: {getattr(exc, 'code', '') or exc}"[:200]
            log.warning("consult %s: %s failed: %s", step.transfer_id, step.step, reason)
            consult.step_failed(step.transfer_id, step.step, reason, now)
    return failed


def _gather(rest: TwilioRest, base: str, step: ConsultStep, now: datetime) -> None:
    operator_leg = step.operator_sid or rest.child_in_progress(step.caller_sid)
    if operator_leg is None:
        raise OperatorGone
    try:
        rest.redirect_call(operator_leg, f"{base}/twilio/consult/{step.transfer_id}/operator")
    except TwilioRestException as exc:
        if exc.code in GONE_CODES:
            raise OperatorGone from exc
        raise


def _dial(rest: TwilioRest, base: str, step: ConsultStep, now: datetime) -> None:
    conference = step.conference_sid or ""
    try:
        rest.end_conference_on_exit(conference, OPERATOR, False)
    except TwilioRestException as exc:
        if exc.code in GONE_CODES:
            raise OperatorGone from exc  # never joined (dropped on the way): nobody to consult for
        raise
    rest.hold(conference, CALLER, True, absolute(base, step.hold_url))
    sid = rest.add_participant(
        conference,
        step.to_number,
        step.from_number,
        step.colleague_label,
        f"{base}/twilio/consult/{step.transfer_id}/colleague",
        consult.DIAL_TIMEOUT_SECONDS,
    )
    consult.colleague_dialled(step.transfer_id, sid, now)


def _connect(rest: TwilioRest, base: str, step: ConsultStep, now: datetime) -> None:
    conference = step.conference_sid or ""
    try:
        rest.end_conference_on_exit(conference, step.colleague_label, True)
    except TwilioRestException as exc:
        if exc.code not in GONE_CODES:
            raise
        # The colleague left in between: nobody to hand over to, so the caller is not left alone.
        rest.hang_up(step.caller_sid)
        return
    _quietly(lambda: rest.hold(conference, CALLER, False))
    _quietly(lambda: rest.remove_participant(conference, OPERATOR))


def _resume(rest: TwilioRest, base: str, step: ConsultStep, now: datetime) -> None:
    conference = step.conference_sid or ""
    if step.colleague_sid and step.reason in consult.HANG_UP_COLLEAGUE:
        _quietly(lambda: rest.hang_up(step.colleague_sid or ""))
    if step.redirect_path:
        _quietly(lambda: rest.redirect_call(step.caller_sid, base + (step.redirect_path or "")))
    if not conference or step.reason not in consult.BACK_WITH_CALLER:
        return
    _quietly(lambda: rest.hold(conference, CALLER, False))
    # Back to a plain call: when the operator hangs up, the caller's call ends too.
    _quietly(lambda: rest.end_conference_on_exit(conference, OPERATOR, True))
    if step.reason != "returned":
        announce = f"{base}/twilio/consult/{step.transfer_id}/announce"
        _quietly(lambda: rest.announce(conference, OPERATOR, announce))


def _check(rest: TwilioRest, base: str, step: ConsultStep, now: datetime) -> None:
    participants = rest.conference_participants(step.conference_name)
    if participants is None or CALLER not in participants:
        return  # no conference, or the caller is not in it
    if any(label != CALLER and status == "connected" for label, status in participants.items()):
        # Not alone: look again later, in case a leave callback never reaches us.
        consult.look_again(step.transfer_id, now)
        return
    moved = consult.caller_alone(step.transfer_id, now)
    if moved is None:
        return
    log.warning("consult %s: the caller was alone in the conference, recalled", step.transfer_id)
    if moved.colleague_sid:
        _quietly(lambda: rest.hang_up(moved.colleague_sid or ""))
    _quietly(lambda: rest.redirect_call(moved.caller_sid, base + moved.path))


def _quietly(request: Callable[[], object]) -> None:
    """A request about a leg or participant that may already be gone: gone is fine."""
    try:
        request()
    except TwilioRestException as exc:
        if exc.code not in GONE_CODES:
            raise


_STEPS = {
    Step.GATHER: _gather,
    Step.DIAL: _dial,
    Step.CONNECT: _connect,
    Step.RESUME: _resume,
    Step.CHECK: _check,
}
