"""The operator console (/console) and its JSON API (/api/v1/...), described in static/openapi.yaml.

Thin: parse, authorise, call a service, answer JSON. Every endpoint needs a log-in (the app-wide
rule answers 401 JSON under /api/); every query is scoped to the user's organisation and to the
queues they may see, so another organisation's ids are 404 and a see-only queue's log-in is 403.
Unsafe methods need the CSRF token in an `X-CSRFToken` header (Flask-WTF checks it before the view;
a missing one is 400 JSON). Errors are `{"error": code, "message": text}`.

Live figures are polled: `GET /api/v1/live` carries an ETag over everything but the clock, so a
console polling every 1-2 s gets `304 Not Modified` until something changes. Waits are sent as
instants (`waiting_since`) beside the server's `now`, so the console counts seconds by itself.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from werkzeug.exceptions import Forbidden

from .. import get_clock
from ..auth import VisibleQueue, queues_visible_to, require_queue
from ..extensions import db
from ..services import console, directory, dispatch, operators
from ..services.operators import NotAllowed, NotLicensed, OperatorError
from .api import API, ID, ApiError, install_error_handlers, iso

bp = Blueprint("operator", __name__)

# Ids beyond a 32-bit integer are nobody's (and would overflow PostgreSQL's integer columns).
MAX_PAUSE_REASON = 100
MAX_WRAP_UP_EXTENSION = 3600
MAX_LIMIT = 100
VOLATILE_KEYS = frozenset({"now", "waiting_seconds", "longest_wait_seconds", "wrap_up_remaining_seconds"})
OPENAPI_FILE = "openapi.yaml"


install_error_handlers(bp)


# --- helpers --------------------------------------------------------------------------------------


def _now() -> datetime:
    return get_clock().now()


def _seconds_since(value: datetime | None, now: datetime) -> int | None:
    return None if value is None else max(0, int((now - value).total_seconds()))


def _body() -> dict[str, Any]:
    """The JSON object sent, or {} for an empty body; anything else is a 400."""
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", _("Send a JSON object."))
    return body


def _limit(default: int, maximum: int = MAX_LIMIT) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(
            422, "invalid_limit", _("limit must be a whole number from 1 to %(max)d.", max=maximum)
        )
    return int(raw)


def _visible() -> list[VisibleQueue]:
    return queues_visible_to(db.session, current_user)


def _fresh() -> None:
    """After a write in its own transaction, read with a new snapshot."""
    db.session.rollback()


# --- serialisers --------------------------------------------------------------------------------


def _operator_json(state: console.OperatorState, now: datetime) -> dict[str, Any]:
    wrap_left = None
    if state.state == "wrap_up" and state.wrap_up_until is not None:
        wrap_left = max(0, int((state.wrap_up_until - now).total_seconds()))
    offer = state.offer
    call = state.current_call
    return {
        "state": state.state,
        "since": iso(state.state_since),
        "pause_reason": state.pause_reason,
        "wrap_up_until": iso(state.wrap_up_until),
        "wrap_up_remaining_seconds": wrap_left,
        "queue_ids": list(state.queue_ids),
        "notice_pending": state.notice_pending,
        "offer": None
        if offer is None
        else {
            "offer_id": offer.offer_id,
            "call_id": offer.call_id,
            "queue_id": offer.queue_id,
            "caller_number": offer.caller_number,
            "waiting_since": iso(offer.waiting_since),
            "deadline_at": iso(offer.deadline_at),
        },
        "current_call": None
        if call is None
        else {
            "call_id": call.call_id,
            "queue_id": call.queue_id,
            "caller_number": call.caller_number,
            "answered_at": iso(call.answered_at),
        },
    }


def _operator_now(now: datetime) -> dict[str, Any]:
    return {"operator": _operator_json(console.operator_state(db.session, current_user.id), now)}


def _queues_json(now: datetime) -> list[dict[str, Any]]:
    visible = _visible()
    figures = console.queue_figures(db.session, current_user.organisation_id, [q.id for q in visible])
    mine = set(console.operator_state(db.session, current_user.id).queue_ids)
    result = []
    for q in visible:
        f = figures[q.id]
        result.append(
            {
                "id": q.id,
                "name": q.name,
                "slug": q.slug,
                "numbers": list(q.numbers),
                "may_log_in": q.may_log_in,
                "logged_in": q.id in mine,
                "operators_logged_in": f.operators_logged_in,
                "operators_free": f.operators_free,
                "operators_by_state": f.operators_by_state,
                "callers_waiting": f.callers_waiting,
                "callbacks_pending": f.callbacks_pending,
                "longest_waiting_since": iso(f.longest_waiting_since),
                "longest_wait_seconds": _seconds_since(f.longest_waiting_since, now),
                "callers": [
                    {
                        "call_id": c.call_id,
                        "number": c.number,
                        "state": c.state,
                        "priority": c.priority,
                        "position": position,
                        "waiting_since": iso(c.waiting_since),
                        "waiting_seconds": _seconds_since(c.waiting_since, now),
                    }
                    for position, c in enumerate(f.callers, start=1)
                ],
            }
        )
    return result


def _local_time(value: datetime | None, now: datetime) -> str | None:
    """ "13:00" today, "2026-11-26 13:00" another day, in the organisation's time zone."""
    if value is None:
        return None
    zone = ZoneInfo(current_user.timezone)
    local = value.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _entry_json(hit: directory.DirectoryHit, now: datetime) -> dict[str, Any]:
    a = hit.availability
    is_me = hit.user_id is not None and hit.user_id == current_user.id
    return {
        "id": hit.id,
        "name": hit.name,
        "department": hit.department,
        "title": hit.title,
        "keywords": hit.keywords,
        "phone_number": hit.phone_number,
        "mobile_number": hit.mobile_number,
        "email": hit.email,
        "is_me": is_me,
        "may_edit": current_user.is_admin or is_me,
        "availability": {
            "state": a.state,
            "note": a.note,
            "until": iso(a.until),
            "until_local": _local_time(a.until, now),
            "on_call": a.on_call,
        },
    }


def _missed_json(item: console.MissedItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "call_id": item.call_id,
        "queue_id": item.queue_id,
        "queue_name": item.queue_name,
        "number": item.number,
        "reason": item.reason,
        "status": item.status,
        "created_at": iso(item.created_at),
        "waited_seconds": item.waited_seconds,
        "handled_by": item.handled_by_name,
        "handled_at": iso(item.handled_at),
        "earlier_open": item.earlier_open,
    }


def _notice_json(notice: console.LoggedOutNotice | None) -> dict[str, Any] | None:
    if notice is None:
        return None
    if notice.reason == operators.REASON_MISSED_OFFERS and notice.missed_offers:
        message = ngettext(
            "You were logged out after %(num)d unanswered call.",
            "You were logged out after %(num)d unanswered calls.",
            notice.missed_offers,
        )
    elif notice.reason == operators.REASON_MISSED_OFFERS:
        message = _("You were logged out after unanswered calls.")
    elif notice.reason == console.REASON_CONSOLE_VANISHED:
        message = _("You were logged out because your console stopped responding.")
    else:
        message = _("You were logged out of your queues.")
    return {"reason": notice.reason, "missed_offers": notice.missed_offers, "message": message}


def _missed_scope() -> dict[str, Any]:
    return {
        "queue_ids": [q.id for q in _visible()],
        "include_unqueued": current_user.is_admin,
    }


# --- the page -----------------------------------------------------------------------------------


@bp.get("/console")
def console_page() -> Any:
    now = _now()
    queues = _visible()
    state = console.operator_state(db.session, current_user.id)
    return render_template(
        "operator/console.html",
        queues=queues,
        logged_in=set(state.queue_ids),
        operator=state,
        heartbeat_seconds=console.HEARTBEAT_INTERVAL_SECONDS,
        now=now,
    )


# --- me -----------------------------------------------------------------------------------------


@bp.get(f"{API}/me")
def api_me() -> Any:
    now = _now()
    notice = console.take_logged_out_notice(current_user.id)
    _fresh()
    return jsonify(
        user={
            "id": current_user.id,
            "name": current_user.name,
            "email": current_user.email,
            "role": current_user.role,
            "plan": current_user.plan,
            "may_take_calls": current_user.plan_may_log_in,
            "locale": current_user.locale,
            "timezone": current_user.timezone,
            "organisation": {"id": current_user.organisation_id, "name": current_user.organisation_name},
        },
        logged_out=_notice_json(notice),
        csrf_token=generate_csrf(),
        heartbeat_interval_seconds=console.HEARTBEAT_INTERVAL_SECONDS,
        now=iso(now),
        **_operator_now(now),
    )


@bp.post(f"{API}/me/heartbeat")
def api_heartbeat() -> Any:
    recorded = console.record_heartbeat(current_user.id, _now())
    return jsonify(recorded=recorded, heartbeat_interval_seconds=console.HEARTBEAT_INTERVAL_SECONDS)


def _operator_action(action: Any, *, wake: bool) -> Any:
    try:
        action()
    except (NotLicensed, NotAllowed) as exc:
        raise ApiError(403, "not_allowed", str(exc)) from exc
    except OperatorError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    if wake:
        dispatch.wake(current_user.organisation_id)
    _fresh()
    return jsonify(**_operator_now(_now()))


@bp.post(f"{API}/me/pause")
def api_pause() -> Any:
    reason = _body().get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ApiError(422, "invalid_reason", _("The reason must be text."))
    if len(reason.strip()) > MAX_PAUSE_REASON:
        raise ApiError(
            422, "invalid_reason", _("The reason may be at most %(max)d characters.", max=MAX_PAUSE_REASON)
        )
    now = _now()
    return _operator_action(lambda: operators.pause(current_user.id, reason, now), wake=False)


@bp.post(f"{API}/me/resume")
def api_resume() -> Any:
    now = _now()
    return _operator_action(lambda: operators.resume(current_user.id, now), wake=True)


@bp.post(f"{API}/me/wrap-up/end")
def api_wrap_up_end() -> Any:
    now = _now()
    return _operator_action(lambda: operators.end_wrap_up(current_user.id, now), wake=True)


@bp.post(f"{API}/me/wrap-up/extend")
def api_wrap_up_extend() -> Any:
    seconds = _body().get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_WRAP_UP_EXTENSION:
        raise ApiError(
            422,
            "invalid_seconds",
            _("seconds must be a whole number from 1 to %(max)d.", max=MAX_WRAP_UP_EXTENSION),
        )
    now = _now()
    return _operator_action(lambda: operators.extend_wrap_up(current_user.id, seconds, now), wake=False)


# --- queues -------------------------------------------------------------------------------------


@bp.get(f"{API}/queues")
def api_queues() -> Any:
    now = _now()
    return jsonify(now=iso(now), queues=_queues_json(now))


@bp.post(f"{API}/queues/<{ID}:queue_id>/login")
def api_queue_login(queue_id: int) -> Any:
    try:
        require_queue(db.session, current_user, queue_id, log_in=True)
    except Forbidden as exc:
        if not current_user.plan_may_log_in:
            message = _("Your plan does not include taking queue calls.")
        else:
            message = _("You may see this queue but not take its calls.")
        raise ApiError(403, "not_allowed", message) from exc
    now = _now()
    return _operator_action(lambda: operators.log_in(current_user.id, [queue_id], now), wake=True)


@bp.post(f"{API}/queues/<{ID}:queue_id>/logout")
def api_queue_logout(queue_id: int) -> Any:
    require_queue(db.session, current_user, queue_id)
    state = console.operator_state(db.session, current_user.id)
    if queue_id not in state.queue_ids:
        may_log_in = any(q.id == queue_id and q.may_log_in for q in _visible())
        if not may_log_in:
            raise ApiError(403, "not_allowed", _("You may see this queue but not take its calls."))
        return jsonify(**_operator_now(_now()))  # not logged in there: nothing to do
    now = _now()
    return _operator_action(lambda: operators.log_out(current_user.id, [queue_id], now), wake=True)


def _etag(payload: dict[str, Any]) -> str:
    def stable(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            return [stable(v) for v in value]
        return value

    text = json.dumps(stable(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@bp.get(f"{API}/live")
def api_live() -> Any:
    now = _now()
    scope = _missed_scope()
    payload = {
        "now": iso(now),
        "operator": _operator_json(console.operator_state(db.session, current_user.id), now),
        "queues": _queues_json(now),
        "missed_open": console.open_missed_count(
            db.session,
            current_user.organisation_id,
            scope["queue_ids"],
            include_unqueued=scope["include_unqueued"],
        ),
    }
    etag = _etag(payload)
    seen = {
        t.strip().removeprefix("W/").strip('"') for t in request.headers.get("If-None-Match", "").split(",")
    }
    seen.add(request.args.get("since", ""))
    headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache, private"}
    if etag in seen:
        return Response(status=304, headers=headers)
    response = jsonify(payload | {"etag": etag})
    response.headers.update(headers)
    return response


# --- directory ----------------------------------------------------------------------------------


@bp.get(f"{API}/directory")
def api_directory() -> Any:
    q = request.args.get("q", "")
    if len(q) > directory.rules.MAX_QUERY_LENGTH:
        raise ApiError(
            422,
            "query_too_long",
            _("Search for at most %(max)d characters.", max=directory.rules.MAX_QUERY_LENGTH),
        )
    limit = _limit(directory.DEFAULT_LIMIT, directory.MAX_LIMIT)
    now = _now()
    hits = directory.search(db.session, current_user.organisation_id, q, now, limit)
    return jsonify(query=q, results=[_entry_json(h, now) for h in hits])


@bp.get(f"{API}/directory/<{ID}:entry_id>")
def api_directory_entry(entry_id: int) -> Any:
    now = _now()
    try:
        hit = directory.get(db.session, current_user.organisation_id, entry_id, now)
    except directory.EntryNotFound as exc:
        raise ApiError(404, "not_found", _("No such colleague in the directory.")) from exc
    return jsonify(entry=_entry_json(hit, now))


def _parse_until(raw: Any, now: datetime) -> datetime | None:
    """ISO 8601 (an instant, or local time in the organisation's zone), or "HH:MM" today."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ApiError(422, "invalid_until", _("until must be a time such as 13:00 or 2026-11-25T13:00."))
    zone = ZoneInfo(current_user.timezone)
    try:
        if len(raw) <= 5 and ":" in raw:
            hour, minute = (int(p) for p in raw.split(":"))
            local_now = now.astimezone(zone)
            until = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        else:
            until = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if until.tzinfo is None:
                until = until.replace(tzinfo=zone)
    except ValueError as exc:
        raise ApiError(
            422, "invalid_until", _("until must be a time such as 13:00 or 2026-11-25T13:00.")
        ) from exc
    return until.astimezone(UTC)


@bp.patch(f"{API}/directory/<{ID}:entry_id>/availability")
def api_directory_availability(entry_id: int) -> Any:
    body = _body()
    now = _now()
    availability = body.get("availability")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(422, "invalid_note", _("The note must be text."))
    if not isinstance(availability, str) or availability not in directory.rules.AVAILABILITIES:
        raise ApiError(422, "invalid_availability", _("availability must be free, busy or away."))
    until = _parse_until(body.get("until"), now)
    if until is not None and until <= now:
        raise ApiError(422, "invalid_until", _("The time must be in the future."))
    if note is not None and len(note.strip()) > directory.MAX_NOTE_LENGTH:
        raise ApiError(
            422,
            "invalid_note",
            _("The note may be at most %(max)d characters.", max=directory.MAX_NOTE_LENGTH),
        )
    editor = directory.Editor(current_user.id, current_user.organisation_id, current_user.is_admin)
    try:
        hit = directory.set_availability(editor, entry_id, availability, note, until, now)
    except directory.EntryNotFound as exc:
        raise ApiError(404, "not_found", _("No such colleague in the directory.")) from exc
    except directory.NotPermitted as exc:
        raise ApiError(
            403, "not_allowed", _("Only administrators and the colleague themself may change this.")
        ) from exc
    except directory.DirectoryError as exc:
        raise ApiError(422, "invalid", str(exc)) from exc
    return jsonify(entry=_entry_json(hit, now))


# --- history and missed callers -----------------------------------------------------------------


@bp.get(f"{API}/history")
def api_history() -> Any:
    limit = _limit(20)
    items = console.history(db.session, current_user.organisation_id, current_user.id, limit)
    now = _now()
    return jsonify(
        now=iso(now),
        calls=[
            {
                "call_id": i.call_id,
                "queue_id": i.queue_id,
                "queue_name": i.queue_name,
                "caller_number": i.caller_number,
                "answered_at": iso(i.answered_at),
                "ended_at": iso(i.ended_at),
                "duration_seconds": int((i.ended_at - i.answered_at).total_seconds())
                if i.ended_at and i.answered_at
                else None,
                "state": i.state,
                "outcome": i.outcome,
                "transfers": [
                    {
                        "id": t.id,
                        "to_number": t.to_number,
                        "to_name": t.to_name,
                        "kind": t.kind,
                        "state": t.state,
                        "recall_reason": t.recall_reason,
                        "created_at": iso(t.created_at),
                    }
                    for t in i.transfers
                ],
                "messages": [
                    {
                        "id": m.id,
                        "channel": m.channel,
                        "to_address": m.to_address,
                        "status": m.status,
                        "created_at": iso(m.created_at),
                    }
                    for m in i.messages
                ],
            }
            for i in items
        ],
    )


MISSED_STATUSES = {"open": "open", "handled": "handled", "all": None}


@bp.get(f"{API}/missed")
def api_missed() -> Any:
    raw = request.args.get("status", "open")
    if raw not in MISSED_STATUSES:
        raise ApiError(422, "invalid_status", _("status must be open, handled or all."))
    limit = _limit(50)
    scope = _missed_scope()
    items = console.missed(
        db.session,
        current_user.organisation_id,
        scope["queue_ids"],
        include_unqueued=scope["include_unqueued"],
        status=MISSED_STATUSES[raw],
        limit=limit,
    )
    return jsonify(missed=[_missed_json(i) for i in items])


@bp.post(f"{API}/missed/<{ID}:missed_id>/handled")
def api_missed_handled(missed_id: int) -> Any:
    scope = _missed_scope()
    try:
        item = console.mark_handled(
            current_user.organisation_id,
            scope["queue_ids"],
            include_unqueued=scope["include_unqueued"],
            missed_id=missed_id,
            user_id=current_user.id,
            now=_now(),
        )
    except console.NotFound as exc:
        raise ApiError(404, "not_found", _("No such missed call.")) from exc
    return jsonify(missed=_missed_json(item))


# --- the API's description ----------------------------------------------------------------------


def openapi_path() -> Path:
    return Path(current_app.static_folder or "static") / OPENAPI_FILE


@bp.get(f"{API}/openapi.yaml")
def api_openapi() -> Any:
    response = Response(openapi_path().read_text(encoding="utf-8"), mimetype="application/yaml")
    response.headers["Cache-Control"] = "no-cache"
    return response
