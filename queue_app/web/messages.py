"""Messages to colleagues: the console's JSON API (/api/v1/...) and Twilio's message status callback.

The API follows web/operator.py: a log-in is needed (the app-wide rule answers 401 JSON), unsafe
methods need the `X-CSRFToken` header (400 `csrf_failed` without it), everything is scoped to the
user's organisation (another organisation's ids are 404), and errors are `{"error", "message"}`.
Described in static/openapi.yaml.

Sending only stores the message; the worker sends it (services/messages.py).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from .. import get_clock
from ..domain import message_templates
from ..domain.message_templates import Segments
from ..extensions import csrf, db
from ..services import dispatch, messages
from ..telephony.signatures import twilio_signed
from .api import API, ID, ApiError, install_error_handlers, iso

log = logging.getLogger("koe.messages")

bp = Blueprint("messages", __name__)

MAX_ID = 2147483647
MAX_LIMIT = 100


install_error_handlers(bp)


@bp.errorhandler(messages.MessageError)
def _message_error(exc: messages.MessageError) -> tuple[Response, int]:
    return jsonify(error=exc.code, message=exc.message), exc.status


# --- helpers --------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", _("Send a JSON object."))
    return body


def _id(body: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ApiError(422, f"invalid_{key}", _("%(key)s must be an id (a whole number).", key=key))
    return value


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, f"invalid_{key}", _("%(key)s must be text.", key=key))
    return value


def _sender() -> messages.Sender:
    return messages.Sender(
        user_id=current_user.id,
        organisation_id=current_user.organisation_id,
        name=current_user.name,
        timezone=current_user.timezone,
        country=messages.organisation_country(db.session, current_user.organisation_id),
    )


def _segments_json(segments: Segments) -> dict[str, Any]:
    return {"encoding": segments.encoding, "count": segments.count, "units": segments.units}


def _template_json(t: messages.TemplateView) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "channel": t.channel,
        "subject": t.subject,
        "body": t.body,
        "fields": list(t.fields),
    }


def _message_json(m: messages.MessageView) -> dict[str, Any]:
    return {
        "id": m.id,
        "call_id": m.call_id,
        "template_id": m.template_id,
        "directory_entry_id": m.directory_entry_id,
        "to_name": m.to_name,
        "sent_by": m.sent_by,
        "channel": m.channel,
        "to_address": m.to_address,
        "subject": m.subject,
        "body": m.body,
        "status": m.status,
        "error": m.error,
        "attempts": m.attempts,
        "next_attempt_at": iso(m.next_attempt_at) if m.status == "queued" else None,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


# --- templates and preview ------------------------------------------------------------------------


@bp.get(f"{API}/templates")
def api_templates() -> Any:
    return jsonify(
        fields=list(message_templates.TEMPLATE_FIELDS),
        templates=[
            _template_json(t) for t in messages.list_templates(db.session, current_user.organisation_id)
        ],
    )


@bp.post(f"{API}/messages/preview")
def api_preview() -> Any:
    body = _body()
    template_id = _id(body, "template_id", required=True)
    assert template_id is not None
    fields = body.get("fields") or {}
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ApiError(422, "invalid_fields", _("fields must map each field's name to its text."))
    p = messages.preview(
        db.session,
        _sender(),
        template_id,
        get_clock().now(),
        call_id=_id(body, "call_id"),
        directory_entry_id=_id(body, "directory_entry_id"),
        fields=fields,
    )
    recipient = p.recipient
    return jsonify(
        template=_template_json(p.template),
        call_id=p.call_id,
        fields=p.fields,
        used_fields=list(p.used_fields),
        empty_fields=list(p.empty_fields),
        channel=p.channel,
        subject=p.subject,
        body=p.body,
        recipient=None
        if recipient is None
        else {
            "directory_entry_id": recipient.directory_entry_id,
            "name": recipient.name,
            "sms": recipient.sms,
            "email": recipient.email,
        },
        segments=_segments_json(p.segments),
    )


# --- sending and the sent list ------------------------------------------------------------------


@bp.post(f"{API}/messages")
def api_send() -> Any:
    body = _body()
    channel = _text(body, "channel")
    text = _text(body, "body")
    if channel not in ("sms", "email"):
        raise ApiError(422, "invalid_channel", _("channel must be sms or email."))
    if text is None:
        raise ApiError(422, "invalid_body", _("Write a message."))
    draft = messages.Draft(
        channel=channel,
        body=text,
        to=_text(body, "to"),
        subject=_text(body, "subject"),
        template_id=_id(body, "template_id"),
        call_id=_id(body, "call_id"),
        directory_entry_id=_id(body, "directory_entry_id"),
    )
    sent = messages.queue_message(_sender(), draft, get_clock().now())
    dispatch.wake(current_user.organisation_id)
    return jsonify(
        message=_message_json(sent), segments=_segments_json(message_templates.sms_segments(sent.body))
    ), 201


@bp.get(f"{API}/messages")
def api_messages() -> Any:
    raw_limit = request.args.get("limit", "")
    if raw_limit and (not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT):
        raise ApiError(
            422, "invalid_limit", _("limit must be a whole number from 1 to %(max)d.", max=MAX_LIMIT)
        )
    raw_call = request.args.get("call_id", "")
    if raw_call and (not raw_call.isdigit() or int(raw_call) > MAX_ID):
        raise ApiError(422, "invalid_call_id", _("%(key)s must be an id (a whole number).", key="call_id"))
    items = messages.list_messages(
        db.session,
        _sender(),
        call_id=int(raw_call) if raw_call else None,
        limit=int(raw_limit) if raw_limit else messages.DEFAULT_LIST_LIMIT,
    )
    return jsonify(now=iso(get_clock().now()), messages=[_message_json(m) for m in items])


@bp.get(f"{API}/messages/<{ID}:message_id>")
def api_message(message_id: int) -> Any:
    return jsonify(message=_message_json(messages.get_message(db.session, _sender(), message_id)))


# --- Twilio's status callback -------------------------------------------------------------------


@bp.post(messages.STATUS_CALLBACK_PATH)
@csrf.exempt
@twilio_signed
def message_status() -> Any:
    """Always 200 (empty), also for unknown messages, so Twilio does not retry in vain."""
    raw = request.args.get("m", "")
    message_id = int(raw) if raw.isdigit() and int(raw) <= MAX_ID else None
    messages.record_status(request.form, get_clock().now(), message_id)
    return Response(status=200)
