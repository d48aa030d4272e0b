"""Invitations by e-mail: a signed, single-use link to choose a password, valid for 7 days.

An admin who adds a user (or presses "send the invitation again") calls `invite` inside their
transaction. It draws a new random nonce, keeps only its SHA-256 on the user (`invite_token_hash`,
`invite_expires_at`: every older link stops working) and queues the e-mail as a `SentMessage` with
`invited_user_id`, so the worker sends it with the same SMTP path, retries and delivery status as the
operators' messages (services/messages.py); the user page shows that status, a failure included.

The link carries `[user id, nonce]` signed with SECRET_KEY (`itsdangerous`), so a tampered link is
refused before the database is asked. `check` tells the page what a link is: valid, expired, used
(the user chose a password with it), replaced by a newer one, or invalid. `accept` sets the password
and uses up the link in one conditional UPDATE, so two tabs cannot both use it. Whoever holds an
expired, used or replaced link may `ask_again`: a new link goes to the address on the account (never
to one typed in), at most once per RESEND_INTERVAL.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from ..auth import CurrentUser
from ..domain import passwords
from ..extensions import db
from ..models import Channel, MessageStatus, Organisation, SentMessage, User
from . import messages
from .audit import ChangeRefused, record

log = logging.getLogger("koe.invitations")

VALID_FOR = timedelta(days=7)
RESEND_INTERVAL = timedelta(minutes=10)
TOKEN_SALT = "koe.invitation"


class LinkState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"
    REPLACED = "replaced"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class LinkCheck:
    state: LinkState
    user_id: int | None = None
    email: str | None = None
    name: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class _Actor:
    """Who the audit log names: the admin, or nobody (the user asked for a new link themself)."""

    id: int | None  # type: ignore[assignment]
    organisation_id: int


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def token_for(user_id: int, nonce: str) -> str:
    return str(_serializer().dumps([user_id, nonce]))


def _parse(token: str) -> tuple[int, str] | None:
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        return None
    return value[0], value[1]


def link_for(token: str) -> str:
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return base + url_for("auth.invitation", token=token, _external=False)


# ---- sending ---------------------------------------------------------------------------------------


def _email_text(user: User, organisation: Organisation, inviter: str | None, link: str) -> tuple[str, str]:
    with force_locale(user.locale or organisation.locale):
        subject = _("Welcome to Kö at %(organisation)s: choose your password", organisation=organisation.name)
        if inviter:
            opening = _(
                "%(inviter)s has invited you to the switchboard of %(organisation)s in Kö.",
                inviter=inviter,
                organisation=organisation.name,
            )
        else:
            opening = _(
                "Here is the new link you asked for, to the switchboard of %(organisation)s in Kö.",
                organisation=organisation.name,
            )
        body = "\n\n".join(
            [
                _("Hello %(name)s,", name=user.name),
                opening + " " + _("Choose your password here; the link works once and for 7 days:"),
                link,
                _("You log in with your e-mail address, %(email)s.", email=user.email),
                _("If you did not expect this e-mail, you can ignore it; nothing changes."),
            ]
        )
    return subject, body


def invite(session: Session, actor_id: int | None, user: User, now: datetime) -> SentMessage:
    """A new link for `user` (older ones stop working) and its e-mail, queued for the worker."""
    if not user.is_active:
        raise ChangeRefused(None, _("%(name)s is deactivated; activate them first.", name=user.name))
    organisation = session.get_one(Organisation, user.organisation_id)
    inviter = session.get(User, actor_id) if actor_id is not None else None
    nonce = secrets.token_urlsafe(24)
    user.invite_token_hash = _hash(nonce)
    user.invite_expires_at = now + VALID_FOR
    # An older invitation still waiting for the worker would carry a dead link: it is not sent.
    session.execute(
        update(SentMessage)
        .where(SentMessage.invited_user_id == user.id, SentMessage.status == MessageStatus.QUEUED.value)
        .values(
            status=MessageStatus.FAILED.value,
            next_attempt_at=None,
            error="Replaced by a newer invitation.",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    subject, body = _email_text(
        user, organisation, inviter.name if inviter else None, link_for(token_for(user.id, nonce))
    )
    message = messages.add_queued(
        session,
        now,
        organisation_id=user.organisation_id,
        sent_by_id=actor_id,
        invited_user_id=user.id,
        channel=Channel.EMAIL.value,
        to_address=user.email,
        subject=subject,
        body=body,
    )
    record(
        session,
        _Actor(actor_id, user.organisation_id),
        "user.invite",
        user,
        {"email": [None, user.email], "expires_at": [None, user.invite_expires_at.isoformat()]},
        at=now,
    )
    return message


def latest(session: Session, user_ids: list[int]) -> dict[int, SentMessage]:
    """The newest invitation e-mail of each user, if any (for the user pages)."""
    if not user_ids:
        return {}
    rows = session.scalars(
        select(SentMessage)
        .where(SentMessage.invited_user_id.in_(user_ids))
        .order_by(SentMessage.created_at, SentMessage.id)
    )
    return {m.invited_user_id: m for m in rows if m.invited_user_id is not None}


# ---- the link --------------------------------------------------------------------------------------


def _state(user: User | None, nonce: str, now: datetime) -> LinkState:
    if user is None or not user.is_active:
        return LinkState.INVALID
    if user.invite_token_hash is None:
        # Used up, or never sent (a forged id with a valid signature cannot exist).
        return LinkState.USED
    if not secrets.compare_digest(user.invite_token_hash, _hash(nonce)):
        return LinkState.REPLACED
    if user.invite_expires_at is None or user.invite_expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.VALID


def check(token: str, now: datetime) -> LinkCheck:
    parsed = _parse(token)
    if parsed is None:
        return LinkCheck(LinkState.INVALID)
    user_id, nonce = parsed
    with db.transaction() as session:
        user = session.get(User, user_id)
        state = _state(user, nonce, now)
        if state is LinkState.INVALID or user is None:
            return LinkCheck(LinkState.INVALID)
        return LinkCheck(state, user.id, user.email, user.name, user.locale)


class PasswordRefused(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


def accept(token: str, password: str, now: datetime) -> tuple[LinkState, CurrentUser | None]:
    """Set the password with a valid link and use the link up; the user to log in, if it worked.

    Raises `PasswordRefused` (nothing changes) when the password breaks the policy.
    """
    parsed = _parse(token)
    if parsed is None:
        return LinkState.INVALID, None
    user_id, nonce = parsed
    with db.transaction() as session:
        user = session.get(User, user_id)
        state = _state(user, nonce, now)
        if state is not LinkState.VALID or user is None:
            return state, None
        found = passwords.problems(password, email=user.email, name=user.name)
        if found:
            raise PasswordRefused(found)
        # Conditional on the very link: of two tabs posting at once, one wins and one sees "used".
        result = session.execute(
            update(User)
            .where(User.id == user.id, User.invite_token_hash == _hash(nonce), User.is_active.is_(True))
            .values(
                password_hash=generate_password_hash(password),
                invite_token_hash=None,
                last_login_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return LinkState.USED, None
        session.refresh(user)
        record(
            session,
            _Actor(user.id, user.organisation_id),
            "user.invitation_accepted",
            user,
            {"password_set": [False, True]},
            at=now,
        )
        organisation = session.get_one(Organisation, user.organisation_id)
        log.info("invitation accepted: user %s", user.id)
        return LinkState.VALID, CurrentUser.from_models(user, organisation)


def ask_again(token: str, now: datetime) -> bool:
    """A new link to the account's own address for an expired, used or replaced link; False when
    none is sent (an invalid link, a deactivated user, or one was sent within RESEND_INTERVAL)."""
    parsed = _parse(token)
    if parsed is None:
        return False
    with db.transaction() as session:
        user = session.get(User, parsed[0])
        if user is None or not user.is_active:
            return False
        newest = latest(session, [user.id]).get(user.id)
        if newest is not None and newest.created_at > now - RESEND_INTERVAL:
            log.info("new invitation link for user %s not sent: one was sent recently", user.id)
            return False
        invite(session, None, user, now)
        return True
