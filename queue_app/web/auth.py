"""Log in, log out, choose a language; and the app-wide rule that every other page needs a log-in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import get_clock
from ..auth import require_login_everywhere, safe_next
from ..i18n import SUPPORTED_LOCALES
from ..services import users
from . import errors

bp = Blueprint("auth", __name__)
bp.before_app_request(require_login_everywhere)
errors.register(bp)

LOCALE_COOKIE_MAX_AGE = 365 * 24 * 3600


@bp.app_context_processor
def locale_for_templates() -> dict[str, str]:
    return {"current_locale": str(get_locale() or current_app.config["DEFAULT_LOCALE"])}


class LoginForm(FlaskForm):
    email = StringField(
        _l("E-mail"), validators=[DataRequired(_l("Enter your e-mail address.")), Length(max=254)]
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])
    remember = BooleanField(_l("Remember me"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.email.data or "", form.password.data or "", get_clock().now())
        if user is not None:
            login_user(user, remember=bool(form.remember.data))
            return redirect(next_url or url_for("main.index"))
        # One message for an unknown address, a wrong password and a deactivated account.
        form.form_errors.append(_("Wrong e-mail or password"))
    return render_template("auth/login.html", form=form, next_url=next_url)


@bp.post("/logout")
def logout() -> Any:
    # Nothing of the old session (its CSRF token included) survives; logout_user then marks the
    # remember-me cookie for deletion.
    session.clear()
    logout_user()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/language")
def set_language() -> Any:
    """Remembered in a cookie before log-in, and on the user's account after."""
    locale = request.form.get("locale", "")
    back = safe_next(request.form.get("next")) or url_for("main.index")
    response = redirect(back)
    if locale not in SUPPORTED_LOCALES:
        return response
    if current_user.is_authenticated:
        users.set_locale(current_user.id, locale)
    response.set_cookie(
        "locale",
        locale,
        max_age=LOCALE_COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=request.is_secure,
    )
    return response


from . import invitations  # noqa: E402,F401  (its routes are on this blueprint)
