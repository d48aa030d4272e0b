"""Which language a page is shown in: the user's, else the organisation's, else the browser's."""

from __future__ import annotations

from flask import current_app, request
from flask_login import current_user

SUPPORTED_LOCALES = ("sv", "en")


def select_locale() -> str:
    locale = getattr(current_user, "locale", None)
    if locale in SUPPORTED_LOCALES:
        return str(locale)
    chosen = request.cookies.get("locale")
    if chosen in SUPPORTED_LOCALES:
        return chosen
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or current_app.config["DEFAULT_LOCALE"]
