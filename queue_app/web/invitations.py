"""The invitation link: choose a password (and be logged in), or ask for a new link.

Public pages on the `auth` blueprint (no log-in needed; CSRF on every form). The link is a secret:
the answers forbid caching and referrers. The page speaks the invited user's language unless the
visitor has chosen one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired

from .. import get_clock
from ..domain import passwords
from ..services import invitations
from ..services.invitations import LinkCheck, LinkState
from .auth import bp


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        [DataRequired(_l("Choose a password."))],
        description=_l(
            "At least 10 characters. A few words in a row are easy to remember and hard to guess."
        ),
    )
    confirm = PasswordField(_l("The same password again"), [DataRequired(_l("Type the password again."))])


class AskAgainForm(FlaskForm):
    """Only the CSRF token."""


def problem_text(code: str) -> str:
    return {
        passwords.TOO_SHORT: _("Use at least %(count)d characters.", count=passwords.MIN_LENGTH),
        passwords.TOO_LONG: _("Use at most %(count)d characters.", count=passwords.MAX_LENGTH),
        passwords.TOO_COMMON: _("This password is among the first ones anyone would guess; choose another."),
        passwords.PERSONAL: _("Leave your name and e-mail address out of the password."),
        passwords.REPETITIVE: _("Use more different characters than that."),
    }[code]


@contextmanager
def _language(found: LinkCheck) -> Iterator[None]:
    if request.cookies.get("locale") or not found.locale:
        yield
        return
    with force_locale(found.locale):
        yield


def _private(body: str, status: int = 200) -> Any:
    return body, status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _closed(token: str, found: LinkCheck) -> Any:
    status = 404 if found.state is LinkState.INVALID else 410
    with _language(found):
        body = render_template(
            "auth/invitation_closed.html", state=found.state.value, token=token, form=AskAgainForm()
        )
    return _private(body, status)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def invitation(token: str) -> Any:
    now = get_clock().now()
    found = invitations.check(token, now)
    if found.state is not LinkState.VALID:
        return _closed(token, found)
    form = SetPasswordForm()
    with _language(found):
        if form.validate_on_submit():
            if form.password.data != form.confirm.data:
                form.confirm.errors = [_("The two passwords differ.")]
            else:
                try:
                    state, user = invitations.accept(token, form.password.data or "", now)
                except invitations.PasswordRefused as refused:
                    form.password.errors = [problem_text(code) for code in refused.problems]
                else:
                    if user is None:
                        return _closed(token, LinkCheck(state, found.user_id, locale=found.locale))
                    # A fresh session: nothing of whoever used this browser before survives.
                    logout_user()
                    session.clear()
                    login_user(user)
                    flash(_("Your password is saved. Welcome to Kö!"), "info")
                    return redirect(url_for("main.index"))
        body = render_template("auth/invitation.html", form=form, found=found)
    return _private(body, 422 if request.method == "POST" else 200)


@bp.post("/invitation/<token>/new")
def ask_for_new_invitation(token: str) -> Any:
    AskAgainForm().validate_on_submit()  # CSRFProtect has already refused a missing or wrong token
    found = invitations.check(token, get_clock().now())
    if found.state is LinkState.INVALID:
        return _closed(token, found)
    if found.state is LinkState.VALID:
        return redirect(url_for("auth.invitation", token=token))
    invitations.ask_again(token, get_clock().now())
    with _language(found):
        # The same answer whether or not one was sent just now: the link's holder learns nothing more.
        body = render_template("auth/invitation_sent.html")
    return _private(body)
