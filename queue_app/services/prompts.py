"""Prompts: what a caller hears at each moment, as text read by a voice or as an audio file.

An audio file is uploaded (WAV or MP3, checked by its bytes with `domain/audio.py`: a file that is
not audio, too large or too long is refused and nothing is stored) or recorded by phone. Files go to
the app's storage (`storage.current_storage()`: S3 or a local folder) under a new key each time, so
a URL Twilio has cached never plays stale audio; the replaced file is deleted after the commit.

Recording by phone is a small state machine on a `Recording` row (purpose "prompt"):

    pending  --worker: place_pending_calls-->  calling  --<Record> action-->  recorded
    recorded --"press 2"-->  calling (record again)
    recorded --"press 1"-->  kept  --worker: fetch_kept_recordings-->  stored (the prompt has audio)
    calling/recorded --the call ends without "keep"-->  abandoned;  no number / REST error --> failed

Recording by dialling in (services/prompt_dial_in.py) starts in `dial_in` instead: the admin calls
the organisation's recording number and enters a one-time PIN, which moves the session to `calling`;
from there the call follows the same TwiML and states.

The web pages only write rows; the worker calls Twilio (it must call `place_pending_calls(now)` and
`fetch_kept_recordings(now)` on every round). The TwiML of the call is in web/prompt_audio.py.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain import audio
from ..extensions import db
from ..models import Language, Organisation, PhoneNumber, Prompt, PromptKind, Queue, Recording, User
from ..storage import AudioStorage, current_storage
from .audit import Actor, ChangeRefused, diff, record, snapshot

log = logging.getLogger("koe.prompts")

PROMPT_FIELDS = ("queue_id", "kind", "language", "text", "audio_key", "audio_content_type")
PURPOSE = "prompt"
PENDING, CALLING, RECORDED, KEPT, STORED = "pending", "calling", "recorded", "kept", "stored"
FAILED, ABANDONED = "failed", "abandoned"
DIAL_IN = "dial_in"  # waiting for the admin to dial the recording number and enter the PIN
OPEN_STATES = (PENDING, CALLING, RECORDED, KEPT, DIAL_IN)
MAX_RECORD_SECONDS = 120
# A kept recording that cannot be fetched for this long is given up.
FETCH_GIVE_UP = timedelta(hours=1)
# A session nobody answered or finished is given up after this long.
SESSION_GIVE_UP = timedelta(minutes=30)
TOKEN_SALT = "koe.record-prompt"


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = audio.MAX_BYTES
    max_seconds: float = audio.MAX_SECONDS

    @classmethod
    def from_app(cls) -> Limits:
        config = current_app.config
        return cls(
            int(config.get("PROMPT_MAX_BYTES", audio.MAX_BYTES)),
            float(config.get("PROMPT_MAX_SECONDS", audio.MAX_SECONDS)),
        )


def refusal_message(refused: audio.AudioRefused) -> str:
    if refused.reason == "empty":
        return _("The file is empty.")
    if refused.reason == "too_large":
        return _("The file is too large; the limit is %(mb)s MB.", mb=f"{(refused.detail or 0) / 1e6:g}")
    if refused.reason == "too_long":
        return _("The recording is too long; the limit is %(s)s seconds.", s=f"{refused.detail or 0:g}")
    return _("This is not a WAV or MP3 audio file (Kö looks at the content, not the file name).")


# ---- reading ---------------------------------------------------------------------------------------


def find(
    session: Session, organisation_id: int, queue_id: int | None, kind: str, language: str
) -> Prompt | None:
    statement = select(Prompt).where(
        Prompt.organisation_id == organisation_id, Prompt.kind == kind, Prompt.language == language
    )
    statement = statement.where(
        Prompt.queue_id.is_(None) if queue_id is None else Prompt.queue_id == queue_id
    )
    return session.scalars(statement).first()


def prompts_of(
    session: Session, organisation_id: int, queue_id: int | None, language: str
) -> dict[str, Prompt]:
    statement = select(Prompt).where(Prompt.organisation_id == organisation_id, Prompt.language == language)
    statement = statement.where(
        Prompt.queue_id.is_(None) if queue_id is None else Prompt.queue_id == queue_id
    )
    return {p.kind: p for p in session.scalars(statement)}


def open_sessions(session: Session, organisation_id: int, prompt_ids: list[int]) -> dict[int, Recording]:
    """The newest recording-by-phone session of each prompt, if any (to show "calling you…")."""
    if not prompt_ids:
        return {}
    rows = session.scalars(
        select(Recording)
        .where(
            Recording.organisation_id == organisation_id,
            Recording.purpose == PURPOSE,
            Recording.prompt_id.in_(prompt_ids),
        )
        .order_by(Recording.id)
    )
    return {r.prompt_id: r for r in rows if r.prompt_id is not None}


def check_choice(kind: str, language: str) -> None:
    if kind not in {k.value for k in PromptKind} or language not in {lang.value for lang in Language}:
        raise ChangeRefused(None, _("There is no such prompt."))


def _target(session: Session, actor: Actor, queue_id: int | None, kind: str, language: str) -> Prompt:
    """The prompt row to change, created (empty) when it does not exist yet."""
    check_choice(kind, language)
    if (
        queue_id is not None
        and session.scalar(
            select(Queue.id).where(Queue.id == queue_id, Queue.organisation_id == actor.organisation_id)
        )
        is None
    ):
        raise ChangeRefused(None, _("Choose one of your queues."))
    row = find(session, actor.organisation_id, queue_id, kind, language)
    if row is None:
        row = Prompt(organisation_id=actor.organisation_id, queue_id=queue_id, kind=kind, language=language)
        session.add(row)
        session.flush()
    return row


def _audit(
    session: Session, actor: Actor, row: Prompt, before: dict[str, Any], action: str, now: datetime
) -> None:
    changes = diff(before, snapshot(row, PROMPT_FIELDS))
    if changes:
        record(session, actor, action, row, changes, at=now)


# ---- text ------------------------------------------------------------------------------------------


def save_text(
    session: Session,
    actor: Actor,
    queue_id: int | None,
    kind: str,
    language: str,
    text: str | None,
    now: datetime,
) -> Prompt:
    row = _target(session, actor, queue_id, kind, language)
    before = snapshot(row, PROMPT_FIELDS) if row.text is not None or row.audio_key else {}
    row.text = (text or "").strip() or None
    row.updated_at = now
    session.flush()
    _audit(session, actor, row, before, "prompt.update", now)
    return row


# ---- audio files -----------------------------------------------------------------------------------


def new_key(organisation_id: int, queue_id: int | None, kind: str, language: str, extension: str) -> str:
    scope = f"q{queue_id}" if queue_id is not None else "org"
    return f"org-{organisation_id}/{scope}-{kind}-{language}-{secrets.token_hex(6)}.{extension}"


def _set_audio(row: Prompt, key: str | None, info: audio.AudioInfo | None, now: datetime) -> str | None:
    """Point the prompt at `key`; returns the key it had (to delete once committed)."""
    old = row.audio_key
    row.audio_key = key
    row.audio_content_type = info.content_type if info else None
    row.audio_duration_seconds = round(info.duration_seconds, 2) if info else None
    row.updated_at = now
    return old if old and old != key and not old.startswith(("http://", "https://", "/")) else None


def upload(
    actor: Actor,
    queue_id: int | None,
    kind: str,
    language: str,
    data: bytes,
    now: datetime,
    storage: AudioStorage | None = None,
    limits: Limits | None = None,
) -> Prompt:
    """Check the bytes, store them, point the prompt at them (one transaction). Raises ChangeRefused."""
    check_choice(kind, language)
    limits = limits or Limits.from_app()
    try:
        info = audio.inspect(data, limits.max_bytes, limits.max_seconds)
    except audio.AudioRefused as refused:
        raise ChangeRefused("audio", refusal_message(refused)) from None
    storage = storage or current_storage()
    key = new_key(actor.organisation_id, queue_id, kind, language, info.extension)
    storage.put(key, data, info.content_type)
    try:
        with db.transaction() as session:
            row = _target(session, actor, queue_id, kind, language)
            before = snapshot(row, PROMPT_FIELDS)
            old = _set_audio(row, key, info, now)
            session.flush()
            changes = diff(before, snapshot(row, PROMPT_FIELDS))
            changes["audio_duration_seconds"] = [None, row.audio_duration_seconds]
            record(session, actor, "prompt.audio_upload", row, changes, at=now)
            session.expunge(row)
    except Exception:
        storage.delete(key)  # nothing stored when the change is not saved
        raise
    _delete_quietly(storage, old)
    return row


def remove_audio(actor: Actor, queue_id: int | None, kind: str, language: str, now: datetime) -> None:
    check_choice(kind, language)
    with db.transaction() as session:
        row = find(session, actor.organisation_id, queue_id, kind, language)
        if row is None or not row.audio_key:
            return
        before = snapshot(row, PROMPT_FIELDS)
        old = _set_audio(row, None, None, now)
        session.flush()
        _audit(session, actor, row, before, "prompt.audio_remove", now)
    _delete_quietly(current_storage(), old)


def _delete_quietly(storage: AudioStorage, key: str | None) -> None:
    if not key:
        return
    try:
        storage.delete(key)
    except Exception:  # a left-over file costs a little storage; the prompt is already right
        log.warning("could not delete replaced prompt audio key=%s", key, exc_info=True)


# ---- recording by phone: the pages ------------------------------------------------------------


def start_recording(
    session: Session, actor: Actor, queue_id: int | None, kind: str, language: str, now: datetime
) -> Recording:
    """Ask the worker to call the admin's phone to record this prompt."""
    user = session.get(User, actor.id)
    if user is None or not user.phone_number:
        raise ChangeRefused(
            None, _("Kö needs your phone number to call you: add it on your user page first.")
        )
    if _caller_id(session, actor.organisation_id) is None:
        raise ChangeRefused(None, _("The organisation has no phone number to call you from; add one first."))
    row = _target(session, actor, queue_id, kind, language)
    for other in session.scalars(
        select(Recording).where(
            Recording.prompt_id == row.id, Recording.purpose == PURPOSE, Recording.status.in_(OPEN_STATES)
        )
    ):
        other.status = ABANDONED  # the newest request wins
    recording = Recording(
        organisation_id=actor.organisation_id,
        purpose=PURPOSE,
        status=PENDING,
        prompt_id=row.id,
        user_id=user.id,
        created_at=now,
    )
    session.add(recording)
    session.flush()
    record(
        session,
        actor,
        "prompt.record_by_phone",
        row,
        {"phone_number": [None, user.phone_number], "recording_id": [None, recording.id]},
        at=now,
    )
    return recording


def token_for(recording_id: int) -> str:
    return str(URLSafeSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT).dumps(recording_id))


def recording_id_from(token: str) -> int | None:
    try:
        value = URLSafeSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def _caller_id(session: Session, organisation_id: int) -> str | None:
    return session.scalar(
        select(PhoneNumber.number)
        .where(PhoneNumber.organisation_id == organisation_id)
        .order_by(PhoneNumber.queue_id.is_(None), PhoneNumber.id)
        .limit(1)
    )


def record_url(recording_id: int, step: str = "") -> str:
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}/twilio/record-prompt/{token_for(recording_id)}" + (f"/{step}" if step else "")


# ---- recording by phone: the worker -----------------------------------------------------------


def place_pending_calls(now: datetime, rest: Any = None) -> int:
    """Call each admin who pressed "record by phone" (worker; after commit, one call per session)."""
    with db.transaction() as session:
        due = [
            (r.id, u.phone_number, _caller_id(session, r.organisation_id))
            for r, u in session.execute(
                select(Recording, User)
                .join(User, User.id == Recording.user_id)
                .where(Recording.purpose == PURPOSE, Recording.status == PENDING)
                .order_by(Recording.id)
            )
        ]
        for recording_id, _to, _from in due:
            # Claimed before calling, so two workers never ring the admin twice.
            session.get_one(Recording, recording_id).status = CALLING
    if not due:
        return 0
    if rest is None:
        from ..telephony.rest import TwilioRest

        rest = TwilioRest.from_app()
    placed = 0
    for recording_id, to, from_ in due:
        try:
            if not to or not from_:
                raise ValueError("no number to call or to call from")
            rest.create_call(
                to,
                from_,
                record_url(recording_id),
                status_callback=record_url(recording_id, "status"),
                timeout=30,
            )
            placed += 1
        except Exception as exc:
            log.warning("record-by-phone call %s failed: %s", recording_id, exc)
            _set_status(recording_id, FAILED)
    return placed


def _set_status(recording_id: int, status: str, **values: Any) -> None:
    with db.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is not None:
            row.status = status
            for name, value in values.items():
                setattr(row, name, value)


def fetch_kept_recordings(now: datetime, fetch: Callable[[str], bytes] | None = None) -> int:
    """Download each kept recording from Twilio, store it, and give its prompt the audio (worker)."""
    with db.transaction() as session:
        kept = [
            (r.id, r.twilio_url, r.recording_sid, r.created_at)
            for r in session.scalars(
                select(Recording)
                .where(Recording.purpose == PURPOSE, Recording.status == KEPT)
                .order_by(Recording.id)
            )
        ]
        stale = session.scalars(
            select(Recording).where(
                Recording.purpose == PURPOSE,
                Recording.status.in_((PENDING, CALLING, RECORDED, DIAL_IN)),
                Recording.created_at < now - SESSION_GIVE_UP,
            )
        ).all()
        for row in stale:
            row.status = ABANDONED
    fetch = fetch or download
    stored = 0
    for recording_id, url, sid, created_at in kept:
        try:
            data = fetch(str(url))
            info = audio.inspect(data, *_limits_tuple())
        except Exception as exc:
            log.warning("fetching recording %s failed: %s", recording_id, exc)
            if now - created_at > FETCH_GIVE_UP or isinstance(exc, audio.AudioRefused):
                _set_status(recording_id, FAILED)
            continue
        if _store_recording(recording_id, data, info, now):
            stored += 1
            if sid:
                _delete_from_twilio(sid)
    return stored


def _limits_tuple() -> tuple[int, float]:
    limits = Limits.from_app()
    return limits.max_bytes, limits.max_seconds


def _store_recording(recording_id: int, data: bytes, info: audio.AudioInfo, now: datetime) -> bool:
    storage = current_storage()
    with db.transaction() as session:
        recording = session.get(Recording, recording_id)
        prompt = session.get(Prompt, recording.prompt_id) if recording and recording.prompt_id else None
        if recording is None or prompt is None or recording.status != KEPT:
            if recording is not None and prompt is None:
                recording.status = FAILED
            return False
        key = new_key(prompt.organisation_id, prompt.queue_id, prompt.kind, prompt.language, info.extension)
    storage.put(key, data, info.content_type)
    try:
        with db.transaction() as session:
            recording = session.get_one(Recording, recording_id)
            prompt = session.get_one(Prompt, recording.prompt_id)
            before = snapshot(prompt, PROMPT_FIELDS)
            old = _set_audio(prompt, key, info, now)
            recording.status = STORED
            recording.storage_key = key
            recording.duration_seconds = prompt.audio_duration_seconds
            session.flush()
            changes = diff(before, snapshot(prompt, PROMPT_FIELDS))
            changes["audio_duration_seconds"] = [None, prompt.audio_duration_seconds]
            actor = _RecordingActor(recording.user_id, prompt.organisation_id)
            record(session, actor, "prompt.audio_recorded", prompt, changes, at=now)
    except Exception:
        storage.delete(key)
        raise
    _delete_quietly(storage, old)
    return True


@dataclass(frozen=True, slots=True)
class _RecordingActor:
    id: int | None  # type: ignore[assignment]
    organisation_id: int


def download(url: str) -> bytes:
    """The recording's media (WAV) from Twilio's REST API, with the account's Basic auth.

    Twilio's own HTTP client hands back text, which would corrupt audio, so media is fetched with
    `requests`; in virtual-time tests the emulator's in-process client (the `twilio_http_client`
    extension) answers instead, through its REST handler, with no sockets.
    """
    config = current_app.config
    sid, token = str(config["TWILIO_ACCOUNT_SID"]), str(config["TWILIO_AUTH_TOKEN"])
    in_process = current_app.extensions.get("twilio_http_client")
    api = getattr(in_process, "api", None)
    if api is not None and hasattr(api, "handle"):
        path = urlsplit(url).path
        start = path.find("/2010-04-01/")
        authorization = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()
        result = api.handle("GET", path[start:] if start >= 0 else path, [], authorization, [])
        if result.status != 200:
            raise RuntimeError(f"recording fetch answered {result.status}")
        return bytes(result.body)
    response = requests.get(url, auth=(sid, token), timeout=30)
    response.raise_for_status()
    return response.content


def _delete_from_twilio(recording_sid: str) -> None:
    """Twilio keeps recordings until deleted; the prompt now lives in Kö's storage."""
    try:
        from ..telephony.rest import twilio_client

        twilio_client().recordings(recording_sid).delete()
    except Exception:
        log.warning("could not delete recording %s at Twilio", recording_sid, exc_info=True)


# ---- recording by phone: the call's webhooks --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallSession:
    recording_id: int
    status: str
    language: str
    voice: str | None
    twilio_url: str | None


def call_session(token: str) -> CallSession | None:
    recording_id = recording_id_from(token)
    if recording_id is None:
        return None
    with db.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is None or row.purpose != PURPOSE:
            return None
        organisation = session.get_one(Organisation, row.organisation_id)
        prompt = session.get(Prompt, row.prompt_id) if row.prompt_id else None
        language = prompt.language if prompt else organisation.locale
        return CallSession(row.id, row.status, language, organisation.default_voice, row.twilio_url)


def recorded(recording_id: int, url: str, sid: str | None, seconds: float | None) -> bool:
    """The <Record> action: remember the take; False when the session is no longer open."""
    with db.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is None or row.status not in (CALLING, RECORDED):
            return False
        row.status = RECORDED
        row.twilio_url = url
        row.recording_sid = sid or None
        row.duration_seconds = seconds
        return True


def choose(recording_id: int, digits: str) -> str:
    """The admin's key after hearing the take: "1" keeps it, "2" records again; returns the new status."""
    with db.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is None:
            return FAILED
        if row.status == RECORDED and digits == "1":
            row.status = KEPT
        elif row.status == RECORDED and digits == "2":
            row.status = CALLING
            row.twilio_url = None
            row.recording_sid = None
            row.duration_seconds = None
        return row.status


def call_ended(recording_id: int, call_status: str) -> None:
    """The status callback: a call that ends before "keep" leaves the session abandoned (or failed)."""
    if call_status not in ("completed", "busy", "no-answer", "failed", "canceled"):
        return
    with db.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is not None and row.status in (CALLING, RECORDED):
            row.status = ABANDONED if call_status == "completed" else FAILED
