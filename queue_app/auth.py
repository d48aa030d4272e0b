"""Who is logged in, and what they may reach.

`CurrentUser` is a frozen snapshot of the user, read with one query per request: no ORM object
outlives the request that loaded it. Every page needs a log-in except an explicit allow-list
(`PUBLIC_BLUEPRINTS`, `PUBLIC_ENDPOINTS`, `PUBLIC_PATH_PREFIXES`), so a new blueprint is protected
by default. Queue access is decided in one place, `require_queue`: another organisation's queue is a
404 (we never confirm that an id exists), a visible queue the user may not log in to is a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Request, Response, abort, flash, jsonify, redirect, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from .extensions import db, login_manager
from .models import PLANS_THAT_MAY_LOG_IN, Organisation, PhoneNumber, Queue, QueueMembership, Role, User

# Reachable without logging in. Blueprints are allowed whole; everything else needs a log-in.
PUBLIC_BLUEPRINTS = frozenset({"auth", "voice", "emulator"})
PUBLIC_ENDPOINTS = frozenset({"static", "health.healthz"})
# Twilio's webhooks carry a signature instead of a session, whichever blueprint serves them.
PUBLIC_PATH_PREFIXES = ("/twilio/",)

login_manager.login_view = "auth.login"


class WebhookSessionInterface(SecureCookieSessionInterface):
    """Twilio's webhooks (`PUBLIC_PATH_PREFIXES`) carry a signature, not our cookie: they get an
    empty session that is neither read from nor written to the cookie (building the signing
    serializer to look for one is a visible share of the waitUrl's CPU time), so a browser that
    reaches such a path (prompt audio, an error page) keeps its own session untouched."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(PUBLIC_PATH_PREFIXES):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not request.path.startswith(PUBLIC_PATH_PREFIXES):
            super().save_session(app, session, response)


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """The logged-in user as Flask-Login sees it (the `UserMixin` interface, without the ORM)."""

    id: int
    organisation_id: int
    organisation_name: str
    email: str
    name: str
    role: str
    plan: str
    locale: str  # the user's own choice, else the organisation's
    timezone: str  # the organisation's

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        # Only active users are ever loaded (see `load_current_user`).
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    @property
    def plan_may_log_in(self) -> bool:
        return self.plan in PLANS_THAT_MAY_LOG_IN

    def get_id(self) -> str:
        return str(self.id)

    @classmethod
    def from_models(cls, user: User, organisation: Organisation) -> CurrentUser:
        return cls(
            id=user.id,
            organisation_id=organisation.id,
            organisation_name=organisation.name,
            email=user.email,
            name=user.name,
            role=user.role,
            plan=user.plan,
            locale=user.locale or organisation.locale,
            timezone=organisation.timezone,
        )


def load_current_user(session: Session, user_id: int) -> CurrentUser | None:
    """One query; None for an unknown or deactivated user, which logs them out."""
    row = session.execute(
        select(User, Organisation)
        .join(Organisation, Organisation.id == User.organisation_id)
        .where(User.id == user_id, User.is_active.is_(True))
    ).one_or_none()
    if row is None:
        return None
    user, organisation = row
    return CurrentUser.from_models(user, organisation)


@login_manager.user_loader
def _load_user(user_id: str) -> CurrentUser | None:
    try:
        return load_current_user(db.session, int(user_id))
    except ValueError:
        return None


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


@login_manager.unauthorized_handler
def unauthorized() -> Any:
    """Pages redirect to the log-in page and come back; API calls get a 401 they can act on."""
    if wants_json():
        return jsonify(error="login_required", message=_("Please log in.")), 401
    flash(_("Please log in to see this page."), "info")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def is_public(endpoint: str | None, path: str) -> bool:
    if path.startswith(PUBLIC_PATH_PREFIXES):
        return True
    if endpoint is None:
        return False
    blueprint = endpoint.rpartition(".")[0]
    return endpoint in PUBLIC_ENDPOINTS or blueprint in PUBLIC_BLUEPRINTS


def require_login_everywhere() -> Any:
    """`before_app_request`: anything not on the allow-list needs a logged-in user."""
    if is_public(request.endpoint, request.path):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


F = TypeVar("F", bound=Callable[..., Any])


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after log-in, or None: never another site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read `/\evil.test` as `//evil.test` and drop tabs and newlines from URLs.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.netloc or parts.scheme:
        return None
    return target


# Tenancy: every query for a customer's rows is scoped by the user's organisation.


def in_organisation(statement: Select[Any], model: Any, user: CurrentUser) -> Select[Any]:
    """Add `model.organisation_id == user.organisation_id` to a select."""
    return statement.where(model.organisation_id == user.organisation_id)


def get_in_organisation(session: Session, model: type[Any], row_id: int, user: CurrentUser) -> Any:
    """The row with this id in the user's organisation, or 404 (also for another organisation's)."""
    row = session.scalars(in_organisation(select(model).where(model.id == row_id), model, user)).first()
    if row is None:
        abort(404)
    return row


@dataclass(frozen=True, slots=True)
class VisibleQueue:
    id: int
    name: str
    slug: str
    numbers: tuple[str, ...]
    may_log_in: bool


def queues_visible_to(session: Session, user: CurrentUser) -> list[VisibleQueue]:
    """Admins see every queue of their organisation; operators the ones their membership shows."""
    statement = (
        select(Queue, QueueMembership.may_log_in)
        .outerjoin(
            QueueMembership,
            (QueueMembership.queue_id == Queue.id) & (QueueMembership.user_id == user.id),
        )
        .where(Queue.organisation_id == user.organisation_id)
        .order_by(Queue.name, Queue.id)
    )
    if not user.is_admin:
        statement = statement.where(QueueMembership.may_see.is_(True))
    rows = session.execute(statement).all()
    ids = [queue.id for queue, _may_log_in in rows]
    numbers: dict[int, list[str]] = {}
    if ids:
        for queue_id, number in session.execute(
            select(PhoneNumber.queue_id, PhoneNumber.number)
            .where(PhoneNumber.organisation_id == user.organisation_id, PhoneNumber.queue_id.in_(ids))
            .order_by(PhoneNumber.number)
        ):
            numbers.setdefault(queue_id, []).append(number)
    return [
        VisibleQueue(
            id=queue.id,
            name=queue.name,
            slug=queue.slug,
            numbers=tuple(numbers.get(queue.id, ())),
            may_log_in=bool(may_log_in) and user.plan_may_log_in,
        )
        for queue, may_log_in in rows
    ]


def require_queue(session: Session, user: CurrentUser, queue_id: int, *, log_in: bool = False) -> Queue:
    """The queue, if the user may see it (and, with `log_in`, take its calls); else 404 or 403.

    Another organisation's queue and a queue the user may not see are both 404, so neither its
    existence nor its id is confirmed. Logging in also needs a plan that includes it.
    """
    row = session.execute(
        select(Queue, QueueMembership)
        .outerjoin(
            QueueMembership,
            (QueueMembership.queue_id == Queue.id) & (QueueMembership.user_id == user.id),
        )
        .where(Queue.id == queue_id, Queue.organisation_id == user.organisation_id)
    ).one_or_none()
    if row is None:
        abort(404)
    queue, membership = row
    if not user.is_admin and (membership is None or not membership.may_see):
        abort(404)
    if log_in and (membership is None or not membership.may_log_in or not user.plan_may_log_in):
        abort(403)
    return queue  # type: ignore[no-any-return]
