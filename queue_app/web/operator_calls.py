"""The browser phone's side of the console API: access tokens, the call's transfers, hang-up.

    GET  /api/v1/token                   a Voice SDK access token (or the emulator adapter's token)
    GET  /api/v1/calls/<id>              a call the operator answered or transferred, with its transfers
    POST /api/v1/calls/<id>/transfer     blind transfer or consult (`kind`) to a colleague or a number
    POST /api/v1/calls/<id>/consult/connect   the consulted colleague takes the caller, you leave
    POST /api/v1/calls/<id>/consult/return    back to the caller; the colleague's leg is hung up
    POST /api/v1/calls/<id>/hangup       end the operator's connected call (the caller leg, by REST)

A blind transfer hands the caller on at once: a busy colleague makes the caller camp on and retry
(CAMP_ON_SECONDS, CAMP_ON_RETRY_SECONDS). A consult (services/consult.py) puts the caller on hold in
a conference while the operator talks to the colleague. The transfer's `state` and `recall_reason`
tell the console what happened. Same rules as operator.py: log-in (401 JSON app-wide), CSRF header
on POST (400), the user's organisation only (other ids are 404).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from .. import get_clock
from ..domain.states import Call as CallState
from ..extensions import db
from ..models import Call, DirectoryEntry, Organisation, Queue, Transfer, User
from ..services import consult, directory, dispatch, transfers
from ..services.messages import MessageError, normalise_phone
from ..telephony import tokens
from ..telephony.rest import TwilioRest
from .api import API, ID, ApiError, install_error_handlers, iso

bp = Blueprint("operator_calls", __name__)

KINDS = ("blind", "consult")
ACTIVE_TRANSFER_STATES = ("dialing", "consulting", "camped_on")


install_error_handlers(bp)


def _now() -> datetime:
    return get_clock().now()


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", _("Send a JSON object."))
    return body


# --- the token ----------------------------------------------------------------------------------


@bp.get(f"{API}/token")
def api_token() -> Any:
    """A token for the operator's browser phone; the console asks again before it expires."""
    if not current_user.plan_may_log_in:
        raise ApiError(403, "not_allowed", _("Your plan does not include taking queue calls."))
    with db.transaction() as session:
        identity = session.scalar(select(User.client_identity).where(User.id == current_user.id))
    if not identity:
        raise ApiError(
            409, "no_phone", _("You have no browser phone (client identity). Ask an administrator.")
        )
    try:
        token = tokens.voice_token(current_app.config, identity)
    except tokens.TokenUnavailable as exc:
        raise ApiError(503, "phone_unavailable", str(exc)) from exc
    response = jsonify(
        token=token.token,
        identity=token.identity,
        mode=token.mode,
        ttl_seconds=token.ttl_seconds,
        refresh_before_seconds=tokens.REFRESH_BEFORE_SECONDS,
        expires_at=iso(datetime.fromtimestamp(token.expires_at, UTC)),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- calls and their transfers ------------------------------------------------------------------


def _transfer_json(t: Transfer, to_name: str | None) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "state": t.state,
        "to_number": t.to_number,
        "to_name": to_name,
        "directory_entry_id": t.directory_entry_id,
        "attempts": t.attempts,
        # A consult keeps its safety-net check in the same column: not a camp-on.
        "camp_on_until": iso(t.camp_on_until) if t.kind == "blind" else None,
        "next_attempt_at": iso(t.next_attempt_at),
        "recall_reason": t.recall_reason,
        "created_at": iso(t.created_at),
        "ended_at": iso(t.ended_at),
        "active": t.state in ACTIVE_TRANSFER_STATES,
    }


def _call_json(session: Any, call: Call) -> dict[str, Any]:
    queue_name = (
        session.scalar(select(Queue.name).where(Queue.id == call.queue_id)) if call.queue_id else None
    )
    rows = session.execute(
        select(Transfer, DirectoryEntry.name)
        .outerjoin(DirectoryEntry, DirectoryEntry.id == Transfer.directory_entry_id)
        .where(Transfer.call_id == call.id)
        .order_by(Transfer.created_at, Transfer.id)
    ).all()
    return {
        "call_id": call.id,
        "state": call.state,
        "queue_id": call.queue_id,
        "queue_name": queue_name,
        "caller_number": call.from_number,
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "answered_by_me": call.answered_by_id == current_user.id,
        "transfers": [_transfer_json(t, name) for t, name in rows],
    }


def _mine(session: Any, call_id: int) -> Call:
    """A call of the user's organisation that they answered or transferred; else 404."""
    call = session.get(Call, call_id)
    if call is None or call.organisation_id != current_user.organisation_id:
        raise ApiError(404, "not_found", _("No such call."))
    if call.answered_by_id != current_user.id:
        transferred = session.scalar(
            select(Transfer.id).where(Transfer.call_id == call.id, Transfer.from_user_id == current_user.id)
        )
        if transferred is None:
            raise ApiError(404, "not_found", _("No such call."))
    return call


@bp.get(f"{API}/calls/<{ID}:call_id>")
def api_call(call_id: int) -> Any:
    with db.transaction() as session:
        return jsonify(call=_call_json(session, _mine(session, call_id)), now=iso(_now()))


def _connected(session: Any, call_id: int) -> Call:
    call = _mine(session, call_id)
    if call.state != CallState.CONNECTED.value or call.answered_by_id != current_user.id:
        raise ApiError(409, "not_connected", _("You can only do this with a call you are connected to."))
    return call


def _transfer_target(body: dict[str, Any], now: datetime) -> tuple[str, int | None]:
    """(E.164 number, directory entry id or None) from `to_number` and/or `directory_entry_id`."""
    entry_id = body.get("directory_entry_id")
    raw = body.get("to_number")
    if entry_id is None and raw in (None, ""):
        raise ApiError(422, "missing_target", _("Choose a colleague or enter a number."))
    if raw not in (None, "") and not isinstance(raw, str):
        raise ApiError(422, "invalid_number", _("The number must be text."))
    if entry_id is not None and (isinstance(entry_id, bool) or not isinstance(entry_id, int)):
        raise ApiError(422, "invalid_entry", _("directory_entry_id must be a whole number."))
    with db.transaction() as session:
        country = session.scalar(
            select(Organisation.holiday_country).where(Organisation.id == current_user.organisation_id)
        )
        if entry_id is not None:
            try:
                hit = directory.get(session, current_user.organisation_id, entry_id, now)
            except directory.EntryNotFound as exc:
                raise ApiError(404, "not_found", _("No such colleague in the directory.")) from exc
            if raw in (None, ""):
                raw = hit.phone_number or hit.mobile_number
                if not raw:
                    raise ApiError(422, "invalid_number", _("%(name)s has no phone number.", name=hit.name))
    try:
        number = normalise_phone(str(raw), country or "SE")
    except MessageError as exc:
        raise ApiError(422, "invalid_number", exc.message) from exc
    return number, entry_id


def _may_take_calls() -> None:
    if not current_user.plan_may_log_in:
        raise ApiError(403, "not_allowed", _("Your plan does not include taking queue calls."))


@bp.post(f"{API}/calls/<{ID}:call_id>/transfer")
def api_transfer(call_id: int) -> Any:
    body = _body()
    _may_take_calls()
    kind = body.get("kind", "blind")
    if kind not in KINDS:
        raise ApiError(422, "invalid_kind", _("kind must be blind or consult."))
    now = _now()
    with db.transaction() as session:
        _connected(session, call_id)
    number, entry_id = _transfer_target(body, now)
    if consult.is_going_on(call_id):
        raise _consult_error(consult.ConsultError("consult_active", ""))
    if kind == "consult":
        transfer_id = _start_consult(call_id, number, entry_id, now)
    else:
        transfer_id = _start_blind(call_id, number, entry_id, now)
    dispatch.wake(current_user.organisation_id)
    return _transfer_answer(call_id, transfer_id)


def _start_blind(call_id: int, number: str, entry_id: int | None, now: datetime) -> int:
    try:
        transfer_id = transfers.start_blind_transfer(call_id, current_user.id, number, now)
    except transfers.TransferError as exc:
        # Checked above; the call changed in between (the caller hung up, or a second click).
        raise ApiError(
            409, "not_connected", _("You can only do this with a call you are connected to.")
        ) from exc
    with db.transaction() as session:
        session.get_one(Transfer, transfer_id).directory_entry_id = entry_id
    return transfer_id


CONSULT_ERRORS = {
    "not_connected": _l("You can only do this with a call you are connected to."),
    "not_possible": _l("A call back cannot be consulted about; transfer it instead."),
    "consult_active": _l("You are already consulting a colleague about this call."),
    "no_consult": _l("There is no consult going on for this call."),
    "not_answered": _l("The colleague has not answered yet. Wait, or go back to the caller."),
    "invalid_number": _l("Enter the number in international form, e.g. +46 8 123 456 78."),
}


def _consult_error(exc: consult.ConsultError) -> ApiError:
    status = 422 if exc.code == "invalid_number" else 409
    return ApiError(status, exc.code, str(CONSULT_ERRORS.get(exc.code, exc.message)))


def _start_consult(call_id: int, number: str, entry_id: int | None, now: datetime) -> int:
    try:
        return consult.start_consult(call_id, current_user.id, number, now, entry_id)
    except consult.ConsultError as exc:
        raise _consult_error(exc) from exc


def _transfer_answer(call_id: int, transfer_id: int) -> Any:
    with db.transaction() as session:
        payload = _call_json(session, session.get_one(Call, call_id))
    transfer_json = next(t for t in payload["transfers"] if t["id"] == transfer_id)
    return jsonify(transfer=transfer_json, call=payload), 202


@bp.post(f"{API}/calls/<{ID}:call_id>/consult/<any(connect, return):action>")
def api_consult(call_id: int, action: str) -> Any:
    """Connect the caller to the consulted colleague, or go back to the caller."""
    _body()
    _may_take_calls()
    with db.transaction() as session:
        _mine(session, call_id)
    act = consult.connect if action == "connect" else consult.return_to_caller
    try:
        transfer_id = act(call_id, current_user.id, _now())
    except consult.ConsultError as exc:
        raise _consult_error(exc) from exc
    dispatch.wake(current_user.organisation_id)
    return _transfer_answer(call_id, transfer_id)


@bp.post(f"{API}/calls/<{ID}:call_id>/hangup")
def api_hangup(call_id: int) -> Any:
    _body()
    with db.transaction() as session:
        call_sid = _connected(session, call_id).call_sid
    try:
        TwilioRest.from_app().hang_up(call_sid)
    except TwilioRestException as exc:
        if exc.status == 404 or exc.code in (20404, 21220):
            raise ApiError(409, "call_ended", _("This call has already ended.")) from exc
        raise ApiError(502, "twilio_error", _("Twilio did not accept the request. Try again.")) from exc
    # The status callback of the caller leg ends the call and starts the operator's wrap-up.
    return jsonify(ok=True, call_id=call_id), 202
