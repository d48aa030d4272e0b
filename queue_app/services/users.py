"""Users: check a log-in, set a password or a language, create a user.

Passwords are hashed with werkzeug's default (scrypt). A log-in for an unknown e-mail address still
checks a hash, so the answer takes as long as for a known one and timing does not tell which
addresses have accounts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..auth import CurrentUser
from ..extensions import db
from ..models import Language, Organisation, Plan, Role, User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # scrypt of a megabyte is a denial of service, not a password


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


class EmailTaken(UserError):
    pass


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not the password of anyone")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def authenticate(email: str, password: str, now: datetime) -> CurrentUser | None:
    """The user, if the address and password match an active account; records the log-in time."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    with db.transaction() as session:
        row = session.execute(
            select(User, Organisation)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(func.lower(User.email) == normalise_email(email))
        ).one_or_none()
        if row is None or row[0].password_hash is None:
            check_password_hash(_dummy_hash(), password)
            log.info("log-in refused: no such user or no password set")
            return None
        user, organisation = row
        if not check_password_hash(user.password_hash, password):
            log.info("log-in refused: wrong password for user %s", user.id)
            return None
        if not user.is_active:
            log.info("log-in refused: user %s is inactive", user.id)
            return None
        user.last_login_at = now
        log.info("log-in: user %s", user.id)
        return CurrentUser.from_models(user, organisation)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"A password may have at most {MAX_PASSWORD_LENGTH} characters.")


def set_password(user_id: int, password: str) -> None:
    _check_password(password)
    with db.transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise UserError(f"No user {user_id}.")
        user.password_hash = generate_password_hash(password)


def set_locale(user_id: int, locale: str | None) -> None:
    """The user's own language; None follows the organisation's."""
    if locale is not None and locale not in {lang.value for lang in Language}:
        raise UserError(f"Unknown language {locale!r}.")
    with db.transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise UserError(f"No user {user_id}.")
        user.locale = locale


def add_user(
    session: Session,
    organisation_id: int,
    email: str,
    name: str,
    *,
    role: str = Role.OPERATOR.value,
    plan: str = Plan.BASIC.value,
    password: str | None = None,
    locale: str | None = None,
    phone_number: str | None = None,
    client_identity: str | None = None,
    is_active: bool = True,
) -> User:
    """Add a user inside the caller's transaction (config import applies many in one)."""
    email = normalise_email(email)
    if "@" not in email:
        raise UserError(f"{email!r} is not an e-mail address.")
    if role not in {r.value for r in Role}:
        raise UserError(f"Unknown role {role!r}.")
    if plan not in {p.value for p in Plan}:
        raise UserError(f"Unknown plan {plan!r}.")
    if locale is not None and locale not in {lang.value for lang in Language}:
        raise UserError(f"Unknown language {locale!r}.")
    if password is not None:
        _check_password(password)
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise EmailTaken(f"There is already a user with the e-mail address {email}.")
    user = User(
        organisation_id=organisation_id,
        email=email,
        name=name.strip(),
        role=role,
        plan=plan,
        password_hash=generate_password_hash(password) if password is not None else None,
        locale=locale,
        phone_number=phone_number,
        client_identity=client_identity,
        is_active=is_active,
    )
    session.add(user)
    session.flush()
    return user


def create_user(
    organisation_id: int,
    email: str,
    name: str,
    *,
    role: str = Role.OPERATOR.value,
    plan: str = Plan.BASIC.value,
    password: str | None = None,
    locale: str | None = None,
    phone_number: str | None = None,
    client_identity: str | None = None,
    is_active: bool = True,
) -> int:
    """Create a user in its own transaction; returns the new id."""
    with db.transaction() as session:
        user = add_user(
            session,
            organisation_id,
            email,
            name,
            role=role,
            plan=plan,
            password=password,
            locale=locale,
            phone_number=phone_number,
            client_identity=client_identity,
            is_active=is_active,
        )
        return user.id
