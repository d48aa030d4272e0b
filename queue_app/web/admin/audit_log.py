"""The audit log page: every admin change, filterable by user, action and date."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request
from sqlalchemy import select

from ...auth import admin_required, in_organisation
from ...domain import hours
from ...extensions import db
from ...models import User
from ...services import audit
from ..admin_forms import AuditFilterForm, options
from . import actor, bp, page


@bp.get("/audit")
@admin_required
def audit_log() -> Any:
    user = actor()
    form = AuditFilterForm(request.args)
    people = db.session.execute(
        in_organisation(select(User.id, User.name), User, user).order_by(User.name)
    ).all()
    form.user.choices = options([(None, "—")] + [(i, n) for i, n in people])
    form.action.choices = options(
        [("", "—")] + [(a, a) for a in audit.actions(db.session, user.organisation_id)]
    )
    status = 200
    entries: list[audit.Entry] = []
    if form.validate():
        tz = hours.zone(user.timezone)
        since = hours.local_to_utc(form.since.data, hours.time(0), tz) if form.since.data else None
        before = (
            hours.local_to_utc(form.until.data + timedelta(days=1), hours.time(0), tz)
            if form.until.data
            else None
        )
        entries = audit.entries(
            db.session,
            user.organisation_id,
            user_id=form.user.data,
            action=form.action.data or None,
            since=since,
            before=before,
        )
    else:
        status = 422
    return page("admin/audit.html", status, form=form, entries=entries)
