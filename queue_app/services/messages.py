"""Messages to a colleague about a call: SMS through Twilio, e-mail through SMTP, never lost silently.

The operator previews a template filled from the call (`preview`), edits it and sends it
(`queue_message`): that only validates the address and stores a `SentMessage` as `queued`, in one
transaction. The worker sends (`send_due`), outside any request:

- It claims due messages with a conditional UPDATE (`queued` -> `sending`, attempts + 1) and a lease
  in `next_attempt_at`, so two workers never both send one, and a worker that dies mid-send leaves a
  claim that the next round takes back (`sending`, no provider id, lease over).
- SMS go to Twilio with a status callback (`/twilio/message-status?m=<id>`); Twilio then reports
  sent, delivered, undelivered or failed (`record_status`). E-mail goes to the SMTP server; its
  answer to DATA is kept in `provider_id` and the message is `sent`.
- A failed attempt is retried after `RETRY_DELAYS` (30 s, 2 min, 10 min); the error of each attempt
  is shown, and after the last one the message is `failed` with it.

Statuses only move forward (queued < sending < sent < delivered; undelivered and failed are final),
so duplicated, late or reordered callbacks change nothing twice.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..domain import message_templates as templates
from ..extensions import db
from ..models import (
    Call,
    Channel,
    DirectoryEntry,
    MessageStatus,
    MessageTemplate,
    Organisation,
    PhoneNumber,
    Queue,
    SentMessage,
    TemplateChannel,
    User,
)
from ..telephony.rest import TwilioRest

log = logging.getLogger("koe.messages")

# After attempt n fails, the next one is RETRY_DELAYS[n-1] later; after the last, the message failed.
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A claimed message not finished within this is taken back (the worker died while sending).
CLAIM_LEASE = timedelta(minutes=5)
BATCH = 10
SMTP_TIMEOUT_SECONDS = 15
MAX_EMAIL_LENGTH = 20_000
MAX_SUBJECT_LENGTH = 200
MAX_FIELD_LENGTH = 500
DEFAULT_LIST_LIMIT = 50
STATUS_CALLBACK_PATH = "/twilio/message-status"

_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
}
# Twilio's message statuses (twilio.md §5) in ours.
_TWILIO_STATUS = {
    "accepted": MessageStatus.SENDING,
    "scheduled": MessageStatus.SENDING,
    "queued": MessageStatus.SENDING,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
# The common delivery errors, so the list says more than a number.
_TWILIO_ERRORS = {
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
}


class MessageError(Exception):
    """The request cannot be done; `message` is for the person who made it."""

    status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class NotFound(MessageError):
    status = 404


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sends: their organisation and time zone decide scope and {time}; their name is {operator}."""

    user_id: int
    organisation_id: int
    name: str
    timezone: str
    country: str = "SE"  # numbers typed without +country are read as this country's


@dataclass(frozen=True, slots=True)
class TemplateView:
    id: int
    name: str
    channel: str
    subject: str | None
    body: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recipient:
    directory_entry_id: int
    name: str
    sms: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class Preview:
    template: TemplateView
    call_id: int | None
    fields: dict[str, str]
    used_fields: tuple[str, ...]
    empty_fields: tuple[str, ...]
    subject: str
    body: str
    channel: str
    recipient: Recipient | None
    segments: templates.Segments


@dataclass(frozen=True, slots=True)
class Draft:
    """What the operator sends, after editing: the final text, not the template."""

    channel: str
    body: str
    to: str | None = None
    subject: str | None = None
    template_id: int | None = None
    call_id: int | None = None
    directory_entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    call_id: int | None
    template_id: int | None
    directory_entry_id: int | None
    to_name: str | None
    sent_by: str | None
    channel: str
    to_address: str
    subject: str | None
    body: str
    status: str
    error: str | None
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


# --- reading ------------------------------------------------------------------------------------


def _template_view(row: MessageTemplate) -> TemplateView:
    try:
        used = templates.fields_used(row.subject) + templates.fields_used(row.body)
    except templates.TemplateError:
        used = ()  # saved before the rule existed; preview says what is wrong
    return TemplateView(row.id, row.name, row.channel, row.subject, row.body, tuple(dict.fromkeys(used)))


def list_templates(session: Session, organisation_id: int) -> list[TemplateView]:
    rows = session.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.organisation_id == organisation_id)
        .order_by(MessageTemplate.name, MessageTemplate.id)
    )
    return [_template_view(row) for row in rows]


def _get(session: Session, model: Any, row_id: int | None, organisation_id: int, message: str) -> Any:
    if row_id is None:
        return None
    row = session.scalar(select(model).where(model.id == row_id, model.organisation_id == organisation_id))
    if row is None:
        raise NotFound("not_found", message)
    return row


def _template(session: Session, sender: Sender, template_id: int | None) -> MessageTemplate | None:
    return _get(session, MessageTemplate, template_id, sender.organisation_id, _("No such message template."))


def _call(session: Session, sender: Sender, call_id: int | None) -> Call | None:
    return _get(session, Call, call_id, sender.organisation_id, _("No such call."))


def _entry(session: Session, sender: Sender, entry_id: int | None) -> DirectoryEntry | None:
    return _get(
        session, DirectoryEntry, entry_id, sender.organisation_id, _("No such colleague in the directory.")
    )


def _call_facts(session: Session, organisation_id: int, call: Call | None) -> templates.CallFacts:
    if call is None:
        return templates.CallFacts()
    queue_name = (
        session.scalar(select(Queue.name).where(Queue.id == call.queue_id)) if call.queue_id else None
    )
    # A colleague calling from their own phone is named; anyone else is their number until edited.
    known = session.scalar(
        select(DirectoryEntry.name)
        .where(
            DirectoryEntry.organisation_id == organisation_id,
            or_(
                DirectoryEntry.phone_number == call.from_number,
                DirectoryEntry.mobile_number == call.from_number,
            ),
        )
        .order_by(DirectoryEntry.id)
        .limit(1)
    )
    return templates.CallFacts(
        caller_name=known,
        caller_number=call.from_number,
        callback_number=call.callback_number,
        arrived_at=call.arrived_at,
        queue_name=queue_name,
    )


def _recipient(entry: DirectoryEntry | None) -> Recipient | None:
    if entry is None:
        return None
    return Recipient(entry.id, entry.name, entry.mobile_number or entry.phone_number, entry.email)


def preview(
    session: Session,
    sender: Sender,
    template_id: int,
    now: datetime,
    *,
    call_id: int | None = None,
    directory_entry_id: int | None = None,
    fields: Mapping[str, str] | None = None,
) -> Preview:
    """The template filled from the call, with `fields` (the operator's edits) taking precedence."""
    template = _template(session, sender, template_id)
    assert template is not None
    call = _call(session, sender, call_id)
    entry = _entry(session, sender, directory_entry_id)
    for name, value in (fields or {}).items():
        if name not in templates.TEMPLATE_FIELDS:
            raise MessageError("unknown_field", _("There is no field {%(name)s}.", name=name))
        if len(value) > MAX_FIELD_LENGTH:
            raise MessageError(
                "invalid_field",
                _("{%(name)s} may be at most %(max)d characters.", name=name, max=MAX_FIELD_LENGTH),
            )
    try:
        used = tuple(
            dict.fromkeys(templates.fields_used(template.subject) + templates.fields_used(template.body))
        )
    except templates.UnknownField as exc:
        raise MessageError(
            "unknown_field", _("The template uses an unknown field: {%(name)s}.", name=exc.field)
        ) from exc
    except templates.TemplateError as exc:
        raise MessageError("invalid_template", str(exc)) from exc
    values = templates.field_values(
        _call_facts(session, sender.organisation_id, call),
        operator=sender.name,
        timezone=sender.timezone,
        now=now,
    )
    values.update({k: v.strip() for k, v in (fields or {}).items()})
    body = templates.fill(template.body, values)
    recipient = _recipient(entry)
    if template.channel != TemplateChannel.ANY.value:
        channel = template.channel
    elif recipient is not None and recipient.sms is None and recipient.email is not None:
        channel = Channel.EMAIL.value
    else:
        channel = Channel.SMS.value
    return Preview(
        template=_template_view(template),
        call_id=call.id if call is not None else None,
        fields=values,
        used_fields=used,
        empty_fields=tuple(name for name in used if not values.get(name)),
        subject=templates.fill(template.subject, values),
        body=body,
        channel=channel,
        recipient=recipient,
        segments=templates.sms_segments(body),
    )


def _view(message: SentMessage, to_name: str | None, sent_by: str | None) -> MessageView:
    return MessageView(
        id=message.id,
        call_id=message.call_id,
        template_id=message.template_id,
        directory_entry_id=message.directory_entry_id,
        to_name=to_name,
        sent_by=sent_by,
        channel=message.channel,
        to_address=message.to_address,
        subject=message.subject,
        body=message.body,
        status=message.status,
        error=message.error,
        attempts=message.attempts,
        next_attempt_at=message.next_attempt_at,
        created_at=message.created_at,
        updated_at=message.updated_at,
    )


def list_messages(
    session: Session, sender: Sender, *, call_id: int | None = None, limit: int = DEFAULT_LIST_LIMIT
) -> list[MessageView]:
    """The organisation's sent messages, newest first (those about one call, with `call_id`)."""
    statement = (
        select(SentMessage, DirectoryEntry.name, User.name)
        .outerjoin(DirectoryEntry, DirectoryEntry.id == SentMessage.directory_entry_id)
        .outerjoin(User, User.id == SentMessage.sent_by_id)
        .where(
            SentMessage.organisation_id == sender.organisation_id,
            # An invitation carries a set-password link: for its user's eyes only.
            SentMessage.invited_user_id.is_(None),
        )
        .order_by(SentMessage.created_at.desc(), SentMessage.id.desc())
        .limit(limit)
    )
    if call_id is not None:
        _call(session, sender, call_id)
        statement = statement.where(SentMessage.call_id == call_id)
    return [_view(message, to_name, sent_by) for message, to_name, sent_by in session.execute(statement)]


def get_message(session: Session, sender: Sender, message_id: int) -> MessageView:
    row = session.execute(
        select(SentMessage, DirectoryEntry.name, User.name)
        .outerjoin(DirectoryEntry, DirectoryEntry.id == SentMessage.directory_entry_id)
        .outerjoin(User, User.id == SentMessage.sent_by_id)
        .where(
            SentMessage.id == message_id,
            SentMessage.organisation_id == sender.organisation_id,
            SentMessage.invited_user_id.is_(None),
        )
    ).one_or_none()
    if row is None:
        raise NotFound("not_found", _("No such message."))
    return _view(*row)


# --- queueing -----------------------------------------------------------------------------------


def normalise_phone(raw: str, country: str) -> str:
    """E.164 for a number typed as "+46 70-123 45 67" or "070-123 45 67"; raises `MessageError`."""
    problem = MessageError(
        "invalid_address",
        _("%(number)s is not a valid phone number (write it as +46701234567 or 070-123 45 67).", number=raw),
    )
    try:
        parsed = phonenumbers.parse(raw, country or None)
    except phonenumbers.NumberParseException as exc:
        raise problem from exc
    if not phonenumbers.is_valid_number(parsed):
        raise problem
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise MessageError(
            "invalid_address",
            _("%(address)s is not a valid e-mail address: %(reason)s", address=raw, reason=exc),
        ) from exc
    return str(checked.ascii_email or checked.normalized)


def sms_from(session: Session, organisation_id: int, call: Call | None) -> str | None:
    """The organisation's number the SMS comes from: the one the caller rang, else its first."""
    numbers = list(
        session.scalars(
            select(PhoneNumber.number)
            .where(PhoneNumber.organisation_id == organisation_id)
            .order_by(PhoneNumber.id)
        )
    )
    if call is not None and call.to_number in numbers:
        return call.to_number
    return numbers[0] if numbers else None


def _address(draft: Draft, entry: DirectoryEntry | None, sender: Sender) -> str:
    raw = (draft.to or "").strip()
    if not raw and entry is not None:
        if draft.channel == Channel.SMS.value:
            raw = entry.mobile_number or entry.phone_number or ""
            if not raw:
                raise MessageError("invalid_address", _("%(name)s has no number for SMS.", name=entry.name))
        else:
            raw = entry.email or ""
            if not raw:
                raise MessageError("invalid_address", _("%(name)s has no e-mail address.", name=entry.name))
    if not raw:
        raise MessageError("invalid_address", _("Give a number or an address, or pick a colleague."))
    if draft.channel == Channel.SMS.value:
        return normalise_phone(raw, sender.country)
    return normalise_email(raw)


def _check_text(draft: Draft) -> tuple[str | None, str]:
    body = draft.body.strip()
    if not body:
        raise MessageError("invalid_body", _("Write a message."))
    left = templates.placeholders_left(body) + templates.placeholders_left(draft.subject or "")
    if left:
        raise MessageError(
            "unfilled_field", _("Fill in {%(name)s} or remove it from the message.", name=left[0])
        )
    limit = templates.MAX_SMS_LENGTH if draft.channel == Channel.SMS.value else MAX_EMAIL_LENGTH
    if len(body) > limit:
        raise MessageError("invalid_body", _("The message may be at most %(max)d characters.", max=limit))
    if draft.channel == Channel.SMS.value:
        return None, body
    subject = " ".join((draft.subject or "").split())
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise MessageError(
            "invalid_subject", _("The subject may be at most %(max)d characters.", max=MAX_SUBJECT_LENGTH)
        )
    return subject or _("Message from the switchboard"), body


def add_queued(session: Session, now: datetime, **fields: Any) -> SentMessage:
    """A message stored `queued` and due now: what `send_due` picks up (the one place that says so)."""
    message = SentMessage(
        status=MessageStatus.QUEUED.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(message)
    session.flush()
    return message


def queue_message(sender: Sender, draft: Draft, now: datetime) -> MessageView:
    """Check the message and store it `queued` for the worker; raises `MessageError` (nothing stored)."""
    if draft.channel not in (Channel.SMS.value, Channel.EMAIL.value):
        raise MessageError("invalid_channel", _("channel must be sms or email."))
    subject, body = _check_text(draft)
    with db.transaction() as session:
        template = _template(session, sender, draft.template_id)
        call = _call(session, sender, draft.call_id)
        entry = _entry(session, sender, draft.directory_entry_id)
        if template is not None and template.channel not in (TemplateChannel.ANY.value, draft.channel):
            raise MessageError(
                "invalid_channel",
                _("The template %(name)s is for SMS only.", name=template.name)
                if template.channel == TemplateChannel.SMS.value
                else _("The template %(name)s is for e-mail only.", name=template.name),
            )
        address = _address(draft, entry, sender)
        if draft.channel == Channel.SMS.value and sms_from(session, sender.organisation_id, call) is None:
            raise MessageError(
                "no_sender_number", _("The organisation has no phone number to send SMS from.")
            )
        message = add_queued(
            session,
            now,
            organisation_id=sender.organisation_id,
            call_id=call.id if call is not None else None,
            template_id=template.id if template is not None else None,
            directory_entry_id=entry.id if entry is not None else None,
            sent_by_id=sender.user_id,
            channel=draft.channel,
            to_address=address,
            subject=subject,
            body=body,
        )
        return _view(message, entry.name if entry is not None else None, sender.name)


# --- the worker ---------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    """Waiting for its (next) attempt, or claimed by a worker whose lease ran out before it finished."""
    return or_(
        and_(SentMessage.status == MessageStatus.QUEUED.value, SentMessage.next_attempt_at <= now),
        and_(
            SentMessage.status == MessageStatus.SENDING.value,
            SentMessage.provider_id.is_(None),
            SentMessage.next_attempt_at <= now,
        ),
    )


def next_due_query() -> Select[tuple[datetime | None]]:
    """The earliest instant a message waits for: `send_due` has work once it has come."""
    return select(func.min(SentMessage.next_attempt_at)).where(
        or_(
            SentMessage.status == MessageStatus.QUEUED.value,
            and_(SentMessage.status == MessageStatus.SENDING.value, SentMessage.provider_id.is_(None)),
        )
    )


def next_due(session: Session) -> datetime | None:
    """When `send_due` next has work (a retry, or a claim to take back); None when nothing waits."""
    return session.scalar(next_due_query())


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    organisation_id: int
    call_id: int | None
    channel: str
    to_address: str
    subject: str | None
    body: str
    attempt: int


def _claim(now: datetime) -> list[_Claimed]:
    claimed: list[_Claimed] = []
    with db.transaction() as session:
        ids = session.scalars(
            select(SentMessage.id)
            .where(_due(now))
            .order_by(SentMessage.next_attempt_at, SentMessage.id)
            .limit(BATCH)
        ).all()
        for message_id in ids:
            result = session.execute(
                update(SentMessage)
                .where(SentMessage.id == message_id, _due(now))
                .values(
                    status=MessageStatus.SENDING.value,
                    attempts=SentMessage.attempts + 1,
                    next_attempt_at=now + CLAIM_LEASE,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker got there first
            m = session.get(SentMessage, message_id, populate_existing=True)
            assert m is not None
            claimed.append(
                _Claimed(
                    m.id, m.organisation_id, m.call_id, m.channel, m.to_address, m.subject, m.body, m.attempts
                )
            )
    return claimed


class SendFailed(Exception):
    """One attempt failed; the message is what the operator sees in the list."""


def send_due(now: datetime, rest: TwilioRest | None = None) -> int:
    """Worker: send every due message (a batch); returns how many attempts were made.

    Runs in an app context. Each attempt's outcome is recorded in its own transaction, after the
    send, so a slow SMTP server or Twilio holds no database lock.
    """
    claimed = _claim(now)
    for message in claimed:
        if message.attempt > MAX_ATTEMPTS:
            # Taken back after a worker died on the last attempt: it may or may not have gone.
            _record_failure(message, now, "The sender stopped while sending; it may not have been sent.")
            continue
        try:
            if message.channel == Channel.SMS.value:
                sid = _send_sms(message, rest)
                _record_accepted(message, now, sid)
            else:
                answer = _send_email(message, now)
                _record_sent(message, now, answer)
        except SendFailed as exc:
            _record_failure(message, now, str(exc))
        except Exception as exc:  # a bug or a surprise: keep the message, show the error, retry
            log.exception("sending message %s failed", message.id)
            _record_failure(message, now, f"{type(exc).__name__}: {exc}")
    return len(claimed)


def _send_sms(message: _Claimed, rest: TwilioRest | None) -> str:
    from twilio.base.exceptions import TwilioException, TwilioRestException

    with db.transaction() as session:
        call = session.get(Call, message.call_id) if message.call_id is not None else None
        from_ = sms_from(session, message.organisation_id, call)
    if from_ is None:
        raise SendFailed("The organisation has no phone number to send SMS from.")
    callback = f"{current_app.config['PUBLIC_BASE_URL']}{STATUS_CALLBACK_PATH}?m={message.id}"
    try:
        return (rest or TwilioRest.from_app()).send_sms(message.to_address, from_, message.body, callback)
    except TwilioRestException as exc:
        raise SendFailed(f"Twilio {exc.status} error {exc.code}: {exc.msg}") from exc
    except (TwilioException, OSError) as exc:
        raise SendFailed(f"Twilio could not be reached: {exc}") from exc


def _email(message: _Claimed, now: datetime) -> tuple[str, bytes]:
    mail_from = current_app.config["MAIL_FROM"]
    envelope_from = parseaddr(mail_from)[1] or mail_from
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = mail_from
    email["To"] = message.to_address
    email["Subject"] = message.subject or ""
    email["Date"] = format_datetime(now)
    email["Message-ID"] = make_msgid(
        idstring=f"koe-{message.id}", domain=envelope_from.rpartition("@")[2] or None
    )
    email.set_content(message.body, cte="quoted-printable")
    return envelope_from, email.as_bytes()


def _send_email(message: _Claimed, now: datetime) -> str:
    """Hand the e-mail to the SMTP server; its answer to DATA (e.g. "250 2.0.0 Ok: queued as …")."""
    config = current_app.config
    host, port = config["SMTP_HOST"], config["SMTP_PORT"]
    if not host:
        raise SendFailed("E-mail is not set up: SMTP_HOST is not set.")
    envelope_from, data = _email(message, now)
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            smtp.ehlo()
            if config["SMTP_STARTTLS"]:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config["SMTP_USERNAME"]:
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
            code, answer = smtp.mail(envelope_from)
            if code != 250:
                raise SendFailed(
                    f"The SMTP server refused the sender {envelope_from}: {code} {_text(answer)}"
                )
            code, answer = smtp.rcpt(message.to_address)
            if code not in (250, 251):
                raise SendFailed(f"The SMTP server refused {message.to_address}: {code} {_text(answer)}")
            code, answer = smtp.data(data)
            return f"{code} {_text(answer)}"
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(f"The SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailed(f"Could not send through the SMTP server {host}:{port}: {exc}") from exc


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _mine(message: _Claimed) -> Any:
    """Still this attempt's: no later attempt took it back, and Twilio has not reported on it."""
    return and_(
        SentMessage.id == message.id,
        SentMessage.status == MessageStatus.SENDING.value,
        SentMessage.attempts == message.attempt,
    )


def _record_accepted(message: _Claimed, now: datetime, sid: str) -> None:
    # Twilio accepted it: what happens next comes in its callbacks (none for this initial status).
    with db.transaction() as session:
        session.execute(
            update(SentMessage)
            .where(
                SentMessage.id == message.id,
                SentMessage.attempts == message.attempt,
                or_(SentMessage.provider_id.is_(None), SentMessage.provider_id == sid),
            )
            .values(provider_id=sid, next_attempt_at=None, error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )


def _record_sent(message: _Claimed, now: datetime, answer: str) -> None:
    with db.transaction() as session:
        session.execute(
            update(SentMessage)
            .where(_mine(message))
            .values(
                status=MessageStatus.SENT.value,
                provider_id=answer[:128],
                next_attempt_at=None,
                error=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )


def _record_failure(message: _Claimed, now: datetime, error: str) -> None:
    if message.attempt < MAX_ATTEMPTS:
        values: dict[str, Any] = {
            "status": MessageStatus.QUEUED.value,
            "next_attempt_at": now + RETRY_DELAYS[message.attempt - 1],
            "error": error,
        }
    else:
        values = {
            "status": MessageStatus.FAILED.value,
            "next_attempt_at": None,
            "error": f"{error} (gave up after {message.attempt} attempts)",
        }
    log.warning("message %s attempt %s failed: %s", message.id, message.attempt, error)
    with db.transaction() as session:
        session.execute(
            update(SentMessage)
            .where(_mine(message), SentMessage.provider_id.is_(None))
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )


# --- Twilio's status callbacks ------------------------------------------------------------------


def record_status(form: Mapping[str, str], now: datetime, message_id: int | None = None) -> bool:
    """Apply one of Twilio's message status callbacks; True if the message changed.

    Found by `MessageSid`, or by our id from the callback URL when the callback beats the worker's
    own record of the sid. Unknown messages and statuses are logged and ignored (Twilio gets a 200).
    """
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    status = _TWILIO_STATUS.get(raw_status)
    if not sid or status is None:
        log.info("message status callback ignored: sid=%s status=%s", sid or "-", raw_status or "-")
        return False
    error = None
    if status in (MessageStatus.UNDELIVERED, MessageStatus.FAILED):
        code = form.get("ErrorCode") or ""
        error = (
            f"{raw_status}: Twilio error {code} {_TWILIO_ERRORS.get(code, '')}".strip()
            if code
            else raw_status
        )
    lower = [s.value for s, rank in _RANK.items() if rank < _RANK[status]]
    with db.transaction() as session:
        match = or_(
            SentMessage.provider_id == sid,
            and_(SentMessage.id == message_id, SentMessage.provider_id.is_(None)),
        )
        target = session.scalar(select(SentMessage.id).where(match).order_by(SentMessage.id).limit(1))
        if target is None:
            log.info("message status callback for an unknown message: sid=%s m=%s", sid, message_id)
            return False
        result = session.execute(
            update(SentMessage)
            .where(
                SentMessage.id == target,
                SentMessage.status.in_(lower),
                or_(SentMessage.provider_id.is_(None), SentMessage.provider_id == sid),
            )
            .values(
                status=status.value,
                provider_id=sid,
                next_attempt_at=None,
                error=error,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def organisation_country(session: Session, organisation_id: int) -> str:
    return (
        session.scalar(select(Organisation.holiday_country).where(Organisation.id == organisation_id)) or "SE"
    )
