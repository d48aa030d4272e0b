"""The admin pages: queues, opening hours, closures, members, licences, organisation, audit log.

Thin views: every route is `@admin_required`, every id is looked up with `get_in_organisation` (so
another organisation's id is a 404), every change goes through one service call in one transaction,
and the service writes the audit entry. A refused change shows its message on the form field it
belongs to and the page answers 422, with nothing changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, render_template
from flask_login import current_user
from flask_wtf import FlaskForm

from ... import get_clock
from ...auth import CurrentUser
from ...services.audit import ChangeRefused

bp = Blueprint("admin", __name__, url_prefix="/admin")


def actor() -> CurrentUser:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def now() -> datetime:
    return get_clock().now()


def refuse(form: FlaskForm, refused: ChangeRefused) -> None:
    """Put a service's refusal on the field it names, else on the form as a whole."""
    field = getattr(form, refused.field, None) if refused.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, refused.message]
    else:
        form.form_errors.append(refused.message)


def page(template: str, http_status: int = 200, **context: Any) -> Any:
    return render_template(template, **context), http_status


def invalid(template: str, **context: Any) -> Any:
    return page(template, 422, **context)


from . import audit_log, closures, directory, members, org, prompts, queues, schedules, templates  # noqa: E402,F401
