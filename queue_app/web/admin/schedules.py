"""Opening hours: rules, holidays, custom dates and the preview (a week, the next changes)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ...auth import admin_required, get_in_organisation, in_organisation
from ...domain import hours
from ...extensions import db
from ...models import Organisation, Queue, Schedule, ScheduleException, ScheduleRule
from ...services import admin_schedules
from ...services.audit import ChangeRefused
from ..admin_forms import (
    EmptyForm,
    ExceptionForm,
    RuleForm,
    ScheduleForm,
    ScheduleSettingsForm,
    options,
)
from . import actor, bp, now, page, refuse


def get_in_organisation_org() -> Organisation:
    organisation = db.session.get(Organisation, actor().organisation_id)
    assert organisation is not None
    return organisation


@bp.route("/schedules", methods=["GET", "POST"])
@admin_required
def schedules() -> Any:
    form = ScheduleForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                schedule = admin_schedules.create_schedule(
                    session, actor(), form.name.data, form.timezone.data or None, now()
                )
                schedule_id = schedule.id
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Created. Now add the times the queue is open."), "info")
            return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id))
    rows = db.session.scalars(
        in_organisation(select(Schedule), Schedule, actor()).order_by(Schedule.name)
    ).all()
    used: dict[int, list[str]] = {}
    for schedule_id, name in db.session.execute(
        in_organisation(select(Queue.schedule_id, Queue.name), Queue, actor()).order_by(Queue.name)
    ):
        if schedule_id is not None:
            used.setdefault(schedule_id, []).append(name)
    status = 422 if request.method == "POST" else 200
    return page("admin/schedules.html", status, form=form, rows=rows, used=used)


def _settings_form(schedule: Schedule, organisation: Organisation) -> ScheduleSettingsForm:
    kwargs: dict[str, Any] = {} if request.method == "POST" else {"obj": schedule}
    form = ScheduleSettingsForm(**kwargs)
    form.categories.choices = options(
        [(c, _category(c)) for c in admin_schedules.supported_categories(organisation)]
    )
    if request.method == "GET":
        form.categories.data = list(schedule.holiday_categories or [])
        form.timezone.data = schedule.timezone or ""
    return form


def _category(name: str) -> str:
    labels = {
        "public": _("Public holidays"),
        "de_facto": _("De facto holidays (Midsummer Eve, Christmas Eve, New Year's Eve)"),
        "bank": _("Bank holidays and half days"),
        "optional": _("Optional days (e.g. Easter Eve, bridge days)"),
    }
    return labels.get(name, name)


def _editor(schedule_id: int, status: int = 200, **forms: Any) -> Any:
    user = actor()
    schedule = get_in_organisation(db.session, Schedule, schedule_id, user)
    organisation = get_in_organisation_org()
    at = now()
    settings = forms.get("settings") or _settings_form(schedule, organisation)
    options = admin_schedules.holiday_options(schedule, organisation, at)
    try:
        value = admin_schedules.schedule_value(schedule, organisation)
        week = admin_schedules.week(value, at)
        transitions = admin_schedules.transitions(value, at)
        preview_error = None
    except hours.HoursError as error:
        week, transitions, preview_error = [], [], str(error)
    queues = db.session.scalars(
        select(Queue).where(Queue.schedule_id == schedule.id).order_by(Queue.name)
    ).all()
    return page(
        "admin/schedule.html",
        status,
        schedule=schedule,
        organisation=organisation,
        settings=settings,
        rule_form=forms.get("rule")
        or RuleForm(formdata=None, frequency="weekly", weekdays=["MO", "TU", "WE", "TH", "FR"]),
        exception_form=forms.get("exception") or ExceptionForm(formdata=None),
        options=options,
        week=week,
        transitions=transitions,
        preview_error=preview_error,
        timezone=schedule.timezone or organisation.timezone,
        queues=queues,
        describe=admin_schedules.describe_rrule,
        button=EmptyForm(),
    )


@bp.get("/schedules/<int:schedule_id>")
@admin_required
def edit_schedule(schedule_id: int) -> Any:
    return _editor(schedule_id)


@bp.post("/schedules/<int:schedule_id>/settings")
@admin_required
def schedule_settings(schedule_id: int) -> Any:
    schedule = get_in_organisation(db.session, Schedule, schedule_id, actor())
    organisation = get_in_organisation_org()
    form = _settings_form(schedule, organisation)
    options = admin_schedules.holiday_options(schedule, organisation, now())
    if form.validate_on_submit():
        overrides: dict[str, bool | None] = {}
        for n, option in enumerate(options):
            choice = request.form.get(f"holiday_{n}", "")
            overrides[option.name] = {"closed": True, "open": False}.get(choice)
        # Corrections for holidays not in the coming year's list stay as they are.
        for choice in schedule.holiday_choices:
            overrides.setdefault(choice.holiday_name, choice.closed)
        try:
            with db.transaction() as session:
                row = get_in_organisation(session, Schedule, schedule_id, actor())
                admin_schedules.update_schedule(
                    session,
                    actor(),
                    row,
                    name=form.name.data,
                    timezone=form.timezone.data or None,
                    categories=form.categories.data or [],
                    overrides=overrides,
                    now=now(),
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id))
    db.session.rollback()
    return _editor(schedule_id, 422, settings=form)


@bp.post("/schedules/<int:schedule_id>/rules")
@admin_required
def add_rule(schedule_id: int) -> Any:
    get_in_organisation(db.session, Schedule, schedule_id, actor())
    form = RuleForm()
    if form.validate_on_submit():
        try:
            rrule = admin_schedules.build_rrule(
                form.frequency.data,
                weekdays=form.weekdays.data or [],
                month_ordinal=form.month_ordinal.data,
                month_weekday=form.month_weekday.data,
                month_day=form.month_day.data,
                year_month=form.year_month.data,
                year_day=form.year_day.data,
                custom=form.custom.data,
            )
            with db.transaction() as session:
                schedule = get_in_organisation(session, Schedule, schedule_id, actor())
                admin_schedules.add_rule(
                    session,
                    actor(),
                    schedule,
                    effect=form.effect.data,
                    rrule=rrule,
                    starts=form.starts.data,
                    ends=form.ends.data,
                    valid_from=form.valid_from.data,
                    valid_until=form.valid_until.data,
                    label=form.label.data or None,
                    now=now(),
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("The rule was added."), "info")
            return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id) + "#rules")
    return _editor(schedule_id, 422, rule=form)


@bp.post("/schedules/<int:schedule_id>/rules/<int:rule_id>/delete")
@admin_required
def delete_rule(schedule_id: int, rule_id: int) -> Any:
    EmptyForm().validate_on_submit()
    with db.transaction() as session:
        schedule = get_in_organisation(session, Schedule, schedule_id, actor())
        rule = _child(session, ScheduleRule, rule_id, schedule)
        admin_schedules.delete_rule(session, actor(), schedule, rule, now())
    flash(_("The rule was deleted."), "info")
    return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id) + "#rules")


def _child(session: Any, model: Any, row_id: int, schedule: Schedule) -> Any:
    from flask import abort

    row = session.scalar(select(model).where(model.id == row_id, model.schedule_id == schedule.id))
    if row is None:
        abort(404)
    return row


@bp.post("/schedules/<int:schedule_id>/exceptions")
@admin_required
def add_exception(schedule_id: int) -> Any:
    get_in_organisation(db.session, Schedule, schedule_id, actor())
    form = ExceptionForm()
    if form.validate_on_submit():
        try:
            with db.transaction() as session:
                schedule = get_in_organisation(session, Schedule, schedule_id, actor())
                admin_schedules.add_exception(
                    session,
                    actor(),
                    schedule,
                    day=form.day.data,
                    closed=bool(form.closed.data),
                    opens=form.opens.data,
                    closes=form.closes.data,
                    label=form.label.data or None,
                    now=now(),
                )
        except ChangeRefused as refused:
            refuse(form, refused)
        else:
            flash(_("The date was added."), "info")
            return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id) + "#dates")
    return _editor(schedule_id, 422, exception=form)


@bp.post("/schedules/<int:schedule_id>/exceptions/<int:exception_id>/delete")
@admin_required
def delete_exception(schedule_id: int, exception_id: int) -> Any:
    EmptyForm().validate_on_submit()
    with db.transaction() as session:
        schedule = get_in_organisation(session, Schedule, schedule_id, actor())
        exception = _child(session, ScheduleException, exception_id, schedule)
        admin_schedules.delete_exception(session, actor(), schedule, exception, now())
    flash(_("The date was deleted."), "info")
    return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id) + "#dates")


@bp.post("/schedules/<int:schedule_id>/delete")
@admin_required
def delete_schedule(schedule_id: int) -> Any:
    EmptyForm().validate_on_submit()
    try:
        with db.transaction() as session:
            schedule = get_in_organisation(session, Schedule, schedule_id, actor())
            admin_schedules.delete_schedule(session, actor(), schedule, now())
    except ChangeRefused as refused:
        flash(refused.message, "error")
        return redirect(url_for("admin.edit_schedule", schedule_id=schedule_id), 303)
    flash(_("The opening hours were deleted."), "info")
    return redirect(url_for("admin.schedules"))
