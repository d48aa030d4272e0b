"""Error pages (400 for a missing CSRF token, 403, 404, 500), translated; JSON for API callers.

A blueprint may still answer its own errors (the voice webhooks answer TwiML): Flask prefers a
blueprint's own handler to these app-wide ones.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from ..auth import wants_json
from ..extensions import db

log = logging.getLogger(__name__)


def _error(status: int, code: str, title: str, message: str, *, minimal: bool = False) -> Any:
    if wants_json():
        return jsonify(error=code, message=message), status
    page = render_template("errors/error.html", status=status, title=title, message=message, minimal=minimal)
    return page, status


def csrf_failed(exc: CSRFError) -> Any:
    log.info("CSRF check failed: %s", exc.description)
    return _error(
        400,
        "csrf_failed",
        _("The form has expired"),
        _("The form has expired or was not sent from Kö; reload and try again."),
    )


def forbidden(_exc: Exception) -> Any:
    return _error(403, "forbidden", _("Not allowed"), _("You do not have permission to do that."))


def not_found(_exc: Exception) -> Any:
    return _error(404, "not_found", _("Page not found"), _("There is nothing here, or not for you."))


def server_error(_exc: Exception) -> Any:
    # Whatever the failed request half-did must not leak into the page we render now.
    db.session.rollback()
    return _error(
        500,
        "server_error",
        _("Something went wrong"),
        _("Something went wrong on our side. Try again in a moment."),
        minimal=True,
    )


def register(bp: Blueprint) -> None:
    """Install the handlers app-wide through `bp` (called by the auth blueprint)."""
    bp.app_errorhandler(CSRFError)(csrf_failed)
    bp.app_errorhandler(403)(forbidden)
    bp.app_errorhandler(404)(not_found)
    bp.app_errorhandler(500)(server_error)
