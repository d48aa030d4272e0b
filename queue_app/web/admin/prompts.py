"""Prompts: the organisation's defaults and each queue's own, as text or audio (uploaded or by phone).

Routes come in pairs: `/admin/prompts/...` for the organisation's defaults and
`/admin/queues/<queue_id>/prompts/...` for one queue's own prompts (which win over the defaults).
The prompt is chosen with `?kind=..&language=..`. Every prompt can be listened to on the page
(`.../audio`, streamed by the app from storage, never a public URL).
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from ...auth import admin_required, get_in_organisation
from ...domain import prompts_text
from ...extensions import db
from ...models import Language, Organisation, PromptKind, Queue
from ...services import prompt_dial_in, prompts
from ...services.audit import ChangeRefused
from ...storage import AudioNotFound, StorageError, current_storage
from ..admin_forms import EmptyForm
from . import actor, bp, now, page, refuse

KINDS: dict[str, tuple[Any, Any]] = {
    PromptKind.WELCOME: (_l("Welcome"), _l("The first thing every caller hears.")),
    PromptKind.FIRST_QUEUE_MESSAGE: (
        _l("First queue message"),
        _l("Heard once a caller is in the queue, before the position and expected wait."),
    ),
    PromptKind.PERIODIC_MESSAGE: (
        _l("Periodic message"),
        _l("Repeated to a waiting caller at the queue's announcement interval."),
    ),
    PromptKind.CLOSED_HOURS: (_l("Closed: outside opening hours"), _l("Heard when the queue is closed.")),
    PromptKind.CLOSED_HOLIDAY: (_l("Closed: holiday"), _l("Heard on a public holiday or a closed day.")),
    PromptKind.CLOSED_CLOSURE: (
        _l("Closed: temporary closure"),
        _l("Heard during a temporary closure that has no message of its own."),
    ),
    PromptKind.OVERFLOW: (
        _l("Queue full"),
        _l("Heard when too many callers wait or the wait is too long, before forwarding or hanging up."),
    ),
    PromptKind.NO_OPERATOR: (_l("No operator"), _l("Heard when nobody is logged in to the queue.")),
    PromptKind.CAMP_ON: (_l("Camp-on"), _l("Heard by a caller waiting for a busy colleague to become free.")),
    PromptKind.CALLBACK_OFFER: (
        _l("Callback offer"),
        _l("Offers the waiting caller to be called back instead (press a key)."),
    ),
    PromptKind.VOICEMAIL: (_l("Leave a message"), _l("Asks the caller to leave a message after the tone.")),
    PromptKind.HOLD_MUSIC: (_l("Hold music"), _l("Played while the caller waits between announcements.")),
}
LANGUAGE_NAMES = {Language.SV: _l("Swedish"), Language.EN: _l("English")}
STATUS_TEXT = {
    prompts.PENDING: _l("We will call your phone in a moment."),
    prompts.CALLING: _l("Calling your phone: follow the instructions."),
    prompts.RECORDED: _l("Recorded: press 1 on the phone to keep it, or 2 to record again."),
    prompts.KEPT: _l("Kept: the recording is being fetched and will show here shortly."),
    prompts.STORED: _l("The recording by phone was saved."),
    prompts.FAILED: _l("The call could not be made or the recording could not be fetched; try again."),
    prompts.ABANDONED: _l("The call ended before the recording was kept."),
    prompts.DIAL_IN: _l("Waiting for your call to the recording number."),
}


class PromptTextForm(FlaskForm):
    text = TextAreaField(
        _l("Text read by the voice"),
        validators=[Optional(), Length(max=5000)],
        description=_l("Used when the prompt has no audio file. Empty: Kö's standard wording."),
    )


class PromptUploadForm(FlaskForm):
    audio = FileField(
        _l("Audio file"),
        description=_l("WAV or MP3, at most 10 MB and 10 minutes. It replaces the text while it is set."),
    )


# ---- helpers -----------------------------------------------------------------------------------


def default_text(kind: str, language: str) -> str:
    """What Kö says when the prompt has neither text nor audio ("" when it says nothing)."""
    if kind == PromptKind.WELCOME:
        organisation = db.session.get(Organisation, actor().organisation_id)
        return prompts_text.welcome(language, organisation.name if organisation else "")
    try:
        return prompts_text.fixed(language, prompts_text.Phrase(kind))
    except (ValueError, KeyError):
        return ""


def _queue(queue_id: int | None) -> Queue | None:
    return None if queue_id is None else get_in_organisation(db.session, Queue, queue_id, actor())


def _language(queue: Queue | None) -> str:
    chosen = request.args.get("language")
    if chosen in {lang.value for lang in Language}:
        return str(chosen)
    if queue is not None:
        return queue.language
    organisation = db.session.get(Organisation, actor().organisation_id)
    locale = organisation.locale if organisation else "sv"
    return locale if locale in {lang.value for lang in Language} else Language.SV.value


def _kind() -> str:
    kind = request.args.get("kind", "")
    if kind not in KINDS:
        abort(404)
    return kind


def _url(endpoint: str, queue_id: int | None, **args: Any) -> str:
    if queue_id is None:
        return url_for(f"admin.{endpoint}_org", **args)
    return url_for(f"admin.{endpoint}_queue", queue_id=queue_id, **args)


def _list_page(queue_id: int | None) -> Any:
    queue = _queue(queue_id)
    language = _language(queue)
    user = actor()
    rows = prompts.prompts_of(db.session, user.organisation_id, queue_id, language)
    sessions = prompts.open_sessions(db.session, user.organisation_id, [p.id for p in rows.values()])
    queues = db.session.execute(
        select(Queue.id, Queue.name).where(Queue.organisation_id == user.organisation_id).order_by(Queue.name)
    ).all()
    items = [
        {
            "kind": kind,
            "label": label,
            "help": help_text,
            "prompt": rows.get(kind),
            "session": sessions.get(rows[kind].id) if kind in rows else None,
            "default": default_text(kind, language),
            "edit": _url("edit_prompt", queue_id, kind=kind, language=language),
            "listen": _url("prompt_audio", queue_id, kind=kind, language=language),
        }
        for kind, (label, help_text) in KINDS.items()
    ]
    return page(
        "admin/prompts.html",
        queue=queue,
        queues=queues,
        language=language,
        languages=LANGUAGE_NAMES,
        items=items,
        status_text=STATUS_TEXT,
        list_url=lambda lang: _url("prompts", queue_id, language=lang),
    )


def _edit_page(
    queue_id: int | None,
    status: int = 200,
    text_form: Any = None,
    upload_form: Any = None,
    errors: Any = None,
    dial_in: prompt_dial_in.DialIn | None = None,
) -> Any:
    queue = _queue(queue_id)
    kind, language = _kind(), _language(queue)
    user = actor()
    prompt = prompts.find(db.session, user.organisation_id, queue_id, kind, language)
    if text_form is None:
        text_form = PromptTextForm(formdata=None, data={"text": prompt.text if prompt else ""})
    session_row = (
        prompts.open_sessions(db.session, user.organisation_id, [prompt.id]).get(prompt.id)
        if prompt
        else None
    )
    args = {"kind": kind, "language": language}
    return page(
        "admin/prompts_edit.html",
        status,
        queue=queue,
        kind=kind,
        label=KINDS[kind][0],
        help=KINDS[kind][1],
        language=language,
        language_name=LANGUAGE_NAMES[Language(language)],
        prompt=prompt,
        default=default_text(kind, language),
        text_form=text_form,
        upload_form=upload_form or PromptUploadForm(formdata=None),
        button=EmptyForm(),
        recording=session_row,
        status_text=STATUS_TEXT,
        errors=errors or [],
        dial_in=dial_in,
        recording_number=prompt_dial_in.recording_number(db.session, user.organisation_id),
        urls={
            "list": _url("prompts", queue_id, language=language),
            "edit": _url("edit_prompt", queue_id, **args),
            "upload": _url("upload_prompt", queue_id, **args),
            "record": _url("record_prompt", queue_id, **args),
            "dial_in": _url("dial_in_prompt", queue_id, **args),
            "remove": _url("remove_prompt_audio", queue_id, **args),
            "listen": _url("prompt_audio", queue_id, **args),
        },
    )


def _edit(queue_id: int | None) -> Any:
    _queue(queue_id)
    if request.method == "GET":
        return _edit_page(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    form = PromptTextForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                prompts.save_text(session, actor(), queue_id, kind, language, form.text.data, now())
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Saved."), "info")
            return redirect(_url("edit_prompt", queue_id, kind=kind, language=language))
    return _edit_page(queue_id, 422, text_form=form)


def _upload(queue_id: int | None) -> Any:
    _queue(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    form = PromptUploadForm()
    if form.validate_on_submit():
        limits = prompts.Limits.from_app()
        file = request.files.get("audio")
        data = file.stream.read(limits.max_bytes + 1) if file else b""
        try:
            row = prompts.upload(actor(), queue_id, kind, language, data, now(), limits=limits)
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(
                _(
                    "The audio file was saved (%(seconds)s seconds).",
                    seconds=f"{row.audio_duration_seconds:.1f}",
                ),
                "info",
            )
            return redirect(_url("edit_prompt", queue_id, kind=kind, language=language))
    return _edit_page(queue_id, 422, upload_form=form)


def _record(queue_id: int | None) -> Any:
    _queue(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    form = EmptyForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                prompts.start_recording(session, actor(), queue_id, kind, language, now())
        except ChangeRefused as refused:
            errors.append(refused.message)
        else:
            flash(_("Kö will call your phone in a moment. Follow the instructions you hear."), "info")
            return redirect(_url("edit_prompt", queue_id, kind=kind, language=language))
    return _edit_page(queue_id, 422, errors=errors or [_("The form has expired; try again.")])


def _dial_in(queue_id: int | None) -> Any:
    """A number and a one-time PIN, shown on this response only (the PIN is stored hashed)."""
    _queue(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    errors: list[str] = []
    if EmptyForm().validate_on_submit():
        try:
            with db.transaction() as session:
                started = prompt_dial_in.start(session, actor(), queue_id, kind, language, now())
        except ChangeRefused as refused:
            errors.append(refused.message)
        else:
            return _edit_page(queue_id, dial_in=started)
    return _edit_page(queue_id, 422, errors=errors or [_("The form has expired; try again.")])


def _remove(queue_id: int | None) -> Any:
    _queue(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    EmptyForm().validate_on_submit()
    prompts.remove_audio(actor(), queue_id, kind, language, now())
    flash(_("The audio file was removed; the text is read again."), "info")
    return redirect(_url("edit_prompt", queue_id, kind=kind, language=language))


def _audio(queue_id: int | None) -> Any:
    _queue(queue_id)
    kind, language = _kind(), _language(_queue(queue_id))
    prompt = prompts.find(db.session, actor().organisation_id, queue_id, kind, language)
    if prompt is None or not prompt.audio_key:
        abort(404)
    try:
        data = current_storage().get(prompt.audio_key)
    except (AudioNotFound, StorageError):
        abort(404)
    response = Response(data, mimetype=prompt.audio_content_type or "application/octet-stream")
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---- routes: the organisation's defaults ---------------------------------------------------------


@bp.get("/prompts")
@admin_required
def prompts_org() -> Any:
    return _list_page(None)


@bp.route("/prompts/edit", methods=["GET", "POST"])
@admin_required
def edit_prompt_org() -> Any:
    return _edit(None)


@bp.post("/prompts/upload")
@admin_required
def upload_prompt_org() -> Any:
    return _upload(None)


@bp.post("/prompts/record")
@admin_required
def record_prompt_org() -> Any:
    return _record(None)


@bp.post("/prompts/dial-in")
@admin_required
def dial_in_prompt_org() -> Any:
    return _dial_in(None)


@bp.post("/prompts/remove-audio")
@admin_required
def remove_prompt_audio_org() -> Any:
    return _remove(None)


@bp.get("/prompts/audio")
@admin_required
def prompt_audio_org() -> Any:
    return _audio(None)


# ---- routes: one queue's own prompts ---------------------------------------------------------------


@bp.get("/queues/<int:queue_id>/prompts")
@admin_required
def prompts_queue(queue_id: int) -> Any:
    return _list_page(queue_id)


@bp.route("/queues/<int:queue_id>/prompts/edit", methods=["GET", "POST"])
@admin_required
def edit_prompt_queue(queue_id: int) -> Any:
    return _edit(queue_id)


@bp.post("/queues/<int:queue_id>/prompts/upload")
@admin_required
def upload_prompt_queue(queue_id: int) -> Any:
    return _upload(queue_id)


@bp.post("/queues/<int:queue_id>/prompts/record")
@admin_required
def record_prompt_queue(queue_id: int) -> Any:
    return _record(queue_id)


@bp.post("/queues/<int:queue_id>/prompts/dial-in")
@admin_required
def dial_in_prompt_queue(queue_id: int) -> Any:
    return _dial_in(queue_id)


@bp.post("/queues/<int:queue_id>/prompts/remove-audio")
@admin_required
def remove_prompt_audio_queue(queue_id: int) -> Any:
    return _remove(queue_id)


@bp.get("/queues/<int:queue_id>/prompts/audio")
@admin_required
def prompt_audio_queue(queue_id: int) -> Any:
    return _audio(queue_id)
