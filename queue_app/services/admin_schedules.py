"""Opening hours and temporary closures as the admin pages change them.

The editor builds RRULEs from a friendly form (`build_rrule`), and checks every value with the
config file's rules (`config_schema.recurrence`, the domain's `parse_rrule`) so a rule saved here is
one `domain.hours` can evaluate. The preview (a week of open intervals and the next transitions)
comes from `domain.hours` itself, on the same values the voice webhook uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..domain import hours
from ..models import (
    Closure,
    ClosureQueue,
    HolidayChoice,
    Organisation,
    Queue,
    Schedule,
    ScheduleException,
    ScheduleRule,
)
from .audit import Actor, ChangeRefused, created, deleted, diff, record, snapshot
from .config_schema import Invalid, recurrence

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
RULE_FIELDS = ("effect", "rrule", "starts", "ends", "valid_from", "valid_until", "label", "position")
EXCEPTION_FIELDS = ("day", "opens", "closes", "label")
CLOSURE_FIELDS = ("all_queues", "starts_at", "ends_at", "reason", "message")
OFFERED_CATEGORIES = ("public", "de_facto")


# --- RRULEs from the friendly form ------------------------------------------------------------------


def build_rrule(
    frequency: str,
    *,
    weekdays: Sequence[str] = (),
    month_ordinal: int | None = None,
    month_weekday: str | None = None,
    month_day: int | None = None,
    year_month: int | None = None,
    year_day: int | None = None,
    custom: str | None = None,
) -> str:
    """The RRULE the form describes: "weekdays 08-17", "the first Monday", "every 24 December"."""
    if frequency == "daily":
        return "FREQ=DAILY"
    if frequency == "weekly":
        days = [d for d in WEEKDAYS if d in weekdays]
        if not days:
            raise ChangeRefused("weekdays", _("Choose at least one day of the week."))
        return "FREQ=WEEKLY;BYDAY=" + ",".join(days)
    if frequency == "monthly_weekday":
        if month_ordinal is None or month_weekday not in WEEKDAYS:
            raise ChangeRefused("month_weekday", _("Choose which weekday of the month."))
        return f"FREQ=MONTHLY;BYDAY={month_ordinal}{month_weekday}"
    if frequency == "monthly_day":
        if month_day is None:
            raise ChangeRefused("month_day", _("Choose a day of the month."))
        return f"FREQ=MONTHLY;BYMONTHDAY={month_day}"
    if frequency == "yearly":
        if year_month is None or year_day is None:
            raise ChangeRefused("year_day", _("Choose a day and a month."))
        try:
            date(2028, year_month, year_day)  # a leap year: 29 February is a real date
        except ValueError:
            raise ChangeRefused("year_day", _("That month has no such day.")) from None
        return f"FREQ=YEARLY;BYMONTH={year_month};BYMONTHDAY={year_day}"
    if frequency == "custom":
        return check_rrule(custom or "")
    raise ChangeRefused("frequency", _("Choose how often the rule repeats."))


def check_rrule(text: str, field: str = "custom") -> str:
    """The config file's RRULE check, then the domain's (only DAILY to YEARLY, no BYHOUR)."""
    try:
        value = recurrence(text)
        hours.parse_rrule(value)
    except (Invalid, hours.HoursError) as error:
        raise ChangeRefused(
            field, _("Not a recurrence rule Kö can use: %(detail)s", detail=str(error))
        ) from None
    return value


def describe_rrule(text: str) -> str:
    """A short human description of the rules the form builds; the RRULE itself for others."""
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    names = dict(zip(WEEKDAYS, _weekday_names(), strict=True))
    freq, byday = parts.get("FREQ"), parts.get("BYDAY", "")
    if freq == "DAILY" and len(parts) == 1:
        return _("Every day")
    if freq == "WEEKLY" and set(parts) == {"FREQ", "BYDAY"}:
        days = byday.split(",")
        if days == ["MO", "TU", "WE", "TH", "FR"]:
            return _("Monday to Friday")
        if all(d in names for d in days):
            return ", ".join(names[d] for d in days)
    if freq == "MONTHLY" and set(parts) == {"FREQ", "BYDAY"} and byday[-2:] in names:
        ordinal = byday[:-2]
        ordinals = {"1": _("first"), "2": _("second"), "3": _("third"), "4": _("fourth"), "-1": _("last")}
        if ordinal in ordinals:
            return _(
                "The %(ordinal)s %(weekday)s of the month",
                ordinal=ordinals[ordinal],
                weekday=names[byday[-2:]],
            )
    if freq == "MONTHLY" and set(parts) == {"FREQ", "BYMONTHDAY"}:
        return _("Day %(day)s of every month", day=parts["BYMONTHDAY"])
    if freq == "YEARLY" and set(parts) == {"FREQ", "BYMONTH", "BYMONTHDAY"}:
        return _("Every year on %(day)s/%(month)s", day=parts["BYMONTHDAY"], month=parts["BYMONTH"])
    return text


def _weekday_names() -> list[str]:
    return [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday")]


# --- Schedules --------------------------------------------------------------------------------------


def _name_taken(session: Session, organisation_id: int, name: str, schedule_id: int | None) -> bool:
    return (
        session.scalar(
            select(Schedule.id).where(
                Schedule.organisation_id == organisation_id,
                Schedule.name == name,
                Schedule.id != (schedule_id or -1),
            )
        )
        is not None
    )


def create_schedule(
    session: Session, actor: Actor, name: str, timezone: str | None, now: datetime
) -> Schedule:
    if _name_taken(session, actor.organisation_id, name, None):
        raise ChangeRefused("name", _("You already have opening hours with this name."))
    schedule = Schedule(
        organisation_id=actor.organisation_id,
        name=name,
        timezone=timezone,
        holiday_categories=list(OFFERED_CATEGORIES),
    )
    session.add(schedule)
    session.flush()
    record(
        session,
        actor,
        "schedule.create",
        schedule,
        created({"name": name, "timezone": timezone, "holiday_categories": schedule.holiday_categories}),
        at=now,
    )
    return schedule


def _choices(schedule: Schedule) -> dict[str, bool]:
    return {c.holiday_name: c.closed for c in schedule.holiday_choices}


def update_schedule(
    session: Session,
    actor: Actor,
    schedule: Schedule,
    *,
    name: str,
    timezone: str | None,
    categories: Iterable[str],
    overrides: dict[str, bool | None],
    now: datetime,
) -> dict[str, list[Any]]:
    """Name, time zone, which holiday categories close, and per-holiday corrections (None: follow)."""
    if _name_taken(session, actor.organisation_id, name, schedule.id):
        raise ChangeRefused("name", _("You already have opening hours with this name."))
    before = {"name": schedule.name, "timezone": schedule.timezone}
    before["holiday_categories"] = sorted(schedule.holiday_categories or [])
    before["holiday_choices"] = _choices(schedule)
    schedule.name = name
    schedule.timezone = timezone
    schedule.holiday_categories = sorted(set(categories))
    wanted = {n: closed for n, closed in overrides.items() if closed is not None}
    for choice in list(schedule.holiday_choices):
        if choice.holiday_name not in wanted:
            schedule.holiday_choices.remove(choice)
        else:
            choice.closed = wanted.pop(choice.holiday_name)
    for holiday_name, closed in sorted(wanted.items()):
        schedule.holiday_choices.append(HolidayChoice(holiday_name=holiday_name, closed=closed))
    session.flush()
    after = {
        "name": schedule.name,
        "timezone": schedule.timezone,
        "holiday_categories": schedule.holiday_categories,
        "holiday_choices": _choices(schedule),
    }
    changes = diff(before, after)
    if changes:
        record(session, actor, "schedule.update", schedule, changes, at=now)
    return changes


def delete_schedule(session: Session, actor: Actor, schedule: Schedule, now: datetime) -> None:
    users = session.scalars(
        select(Queue.name).where(Queue.schedule_id == schedule.id).order_by(Queue.name)
    ).all()
    if users:
        raise ChangeRefused(
            None,
            _(
                "These opening hours are used by %(queues)s; choose other hours there first.",
                queues=", ".join(users),
            ),
        )
    record(
        session,
        actor,
        "schedule.delete",
        ("schedules", schedule.id),
        deleted({"name": schedule.name}),
        at=now,
    )
    session.delete(schedule)
    session.flush()


def add_rule(
    session: Session,
    actor: Actor,
    schedule: Schedule,
    *,
    effect: str,
    rrule: str,
    starts: time,
    ends: time,
    valid_from: date | None,
    valid_until: date | None,
    label: str | None,
    now: datetime,
) -> ScheduleRule:
    # The config file's rule: a rule that crosses midnight is written as two.
    if ends <= starts and not (starts == ends == time(0)):
        raise ChangeRefused("ends", _("Must be after the opening time; split a rule that crosses midnight."))
    if valid_from and valid_until and valid_until < valid_from:
        raise ChangeRefused("valid_until", _("Must not be before the first day."))
    try:
        hours.Rule(effect, rrule, starts, ends, valid_from, valid_until, label)  # type: ignore[arg-type]
    except hours.HoursError as error:
        raise ChangeRefused("frequency", str(error)) from None
    position = max((r.position for r in schedule.rules), default=-1) + 1
    rule = ScheduleRule(
        effect=effect,
        rrule=rrule,
        starts=starts,
        ends=ends,
        valid_from=valid_from,
        valid_until=valid_until,
        label=label,
        position=position,
    )
    schedule.rules.append(rule)
    session.flush()
    record(session, actor, "schedule.rule.create", schedule, created(snapshot(rule, RULE_FIELDS)), at=now)
    return rule


def delete_rule(
    session: Session, actor: Actor, schedule: Schedule, rule: ScheduleRule, now: datetime
) -> None:
    record(session, actor, "schedule.rule.delete", schedule, deleted(snapshot(rule, RULE_FIELDS)), at=now)
    schedule.rules.remove(rule)
    session.flush()


def add_exception(
    session: Session,
    actor: Actor,
    schedule: Schedule,
    *,
    day: date,
    closed: bool,
    opens: time | None,
    closes: time | None,
    label: str | None,
    now: datetime,
) -> ScheduleException:
    if closed:
        opens = closes = None
    elif opens is None:
        raise ChangeRefused("opens", _("Enter the opening time, or tick closed all day."))
    elif closes is None:
        raise ChangeRefused("closes", _("Enter the closing time, or tick closed all day."))
    elif closes <= opens:
        raise ChangeRefused("closes", _("Must be after the opening time."))
    if any(e.day == day for e in schedule.exceptions):
        raise ChangeRefused("day", _("This day already has its own hours; delete them first."))
    exception = ScheduleException(day=day, opens=opens, closes=closes, label=label)
    schedule.exceptions.append(exception)
    session.flush()
    record(
        session,
        actor,
        "schedule.exception.create",
        schedule,
        created(snapshot(exception, EXCEPTION_FIELDS)),
        at=now,
    )
    return exception


def delete_exception(
    session: Session, actor: Actor, schedule: Schedule, exception: ScheduleException, now: datetime
) -> None:
    record(
        session,
        actor,
        "schedule.exception.delete",
        schedule,
        deleted(snapshot(exception, EXCEPTION_FIELDS)),
        at=now,
    )
    schedule.exceptions.remove(exception)
    session.flush()


# --- The preview ------------------------------------------------------------------------------------


def schedule_value(schedule: Schedule, organisation: Organisation) -> hours.Schedule:
    """The schedule as the domain evaluates it, without closures (they belong to queues)."""
    return hours.Schedule(
        timezone=schedule.timezone or organisation.timezone,
        rules=tuple(
            hours.Rule(
                "open" if r.effect == "open" else "closed",
                r.rrule,
                r.starts,
                r.ends,
                r.valid_from,
                r.valid_until,
                r.label,
            )
            for r in schedule.rules
        ),
        holidays=hours.HolidayPolicy(
            country=organisation.holiday_country or None,
            categories=tuple(schedule.holiday_categories or ()),
            overrides=tuple(sorted((c.holiday_name, c.closed) for c in schedule.holiday_choices)),
        ),
        exceptions=tuple(hours.DayException(e.day, e.opens, e.closes, e.label) for e in schedule.exceptions),
    )


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    intervals: list[tuple[datetime, datetime]]  # local, aware
    note: str | None  # the holiday or custom date that decides the day


def week(value: hours.Schedule, now: datetime, days: int = 7) -> list[Day]:
    """The coming days from today (local), each with its open intervals in local time."""
    tz = hours.zone(value.timezone)
    today = now.astimezone(tz).date()
    result = []
    exceptions = {e.day: e for e in value.exceptions}
    for n in range(days):
        day = today + timedelta(days=n)
        start = hours.local_to_utc(day, time(0), tz)
        end = hours.local_to_utc(day + timedelta(days=1), time(0), tz)
        intervals = [(a.astimezone(tz), b.astimezone(tz)) for a, b in hours.open_intervals(value, start, end)]
        holiday = hours.closing_holiday(value.holidays, day)
        note = holiday.name if holiday else None
        if day in exceptions:
            note = exceptions[day].label or _("Custom hours")
        result.append(Day(day, intervals, note))
    return result


@dataclass(frozen=True, slots=True)
class Change:
    """A transition as the preview lists it; `stays_closed`: closed before too, only the reason
    (so the closing message) changes, e.g. from a custom date back to outside hours at midnight."""

    at: datetime
    opens: bool
    reason: str
    label: str | None
    stays_closed: bool


def transitions(value: hours.Schedule, now: datetime, count: int = 8) -> list[Change]:
    """The next `count` changes a caller would notice: opening, closing, or another closing message.

    A change of label alone while closed (the end of a closed rule at the end of the day) is left
    out: callers hear the same thing before and after, and "closes at 17:00" would be wrong.
    """
    state = hours.status(value, now)
    was_open, was_reason = state.open, state.reason
    changes: list[Change] = []
    for t in hours.next_transitions(value, now, count * 3):
        stays_closed = not t.opens and not was_open
        if not (stays_closed and t.reason == was_reason):
            changes.append(Change(t.at, t.opens, t.reason, t.label, stays_closed))
        was_open, was_reason = t.opens, t.reason
        if len(changes) == count:
            break
    return changes


@dataclass(frozen=True, slots=True)
class HolidayOption:
    name: str
    english_name: str
    category: str
    next_day: date
    override: bool | None  # True closes, False stays open, None follows the categories
    closes: bool  # what the schedule does on that day now


def holiday_options(schedule: Schedule, organisation: Organisation, now: datetime) -> list[HolidayOption]:
    """The country's holidays of the coming year, in the order they come, with what each does."""
    country = organisation.holiday_country
    if not country:
        return []
    today = now.astimezone(hours.zone(schedule.timezone or organisation.timezone)).date()
    policy = schedule_value(schedule, organisation).holidays
    choices = _choices(schedule)
    seen: dict[str, HolidayOption] = {}
    for year in (today.year, today.year + 1):
        for day, entries in sorted(hours.holidays_of_year(country, None, None, year).items()):
            if not today <= day < today + timedelta(days=366):
                continue
            for holiday in entries:
                if holiday.name in seen:
                    continue
                closing = hours.closing_holiday(policy, day)
                seen[holiday.name] = HolidayOption(
                    holiday.name,
                    holiday.english_name,
                    holiday.category,
                    day,
                    choices.get(holiday.name),
                    closing is not None and closing.name == holiday.name,
                )
    return list(seen.values())


def supported_categories(organisation: Organisation) -> list[str]:
    import holidays as holidays_package

    if not organisation.holiday_country:
        return []
    found = holidays_package.country_holidays(organisation.holiday_country).supported_categories
    first = [c for c in OFFERED_CATEGORIES if c in found]
    return first + sorted(c for c in found if c not in first)


# --- Temporary closures -----------------------------------------------------------------------------


def create_closure(
    session: Session,
    actor: Actor,
    *,
    queue_ids: Sequence[int] | None,
    starts_at: datetime,
    ends_at: datetime | None,
    reason: str | None,
    message: str | None,
    now: datetime,
) -> Closure:
    """Close the chosen queues (None: all of them, including queues added later) from `starts_at`."""
    if ends_at is not None and ends_at <= starts_at:
        raise ChangeRefused("until", _("Must be after the start."))
    if ends_at is not None and ends_at <= now:
        raise ChangeRefused("until", _("Must be in the future."))
    queues: list[Queue] = []
    if queue_ids is not None:
        wanted = sorted(set(queue_ids))
        if not wanted:
            raise ChangeRefused("queues", _("Choose at least one queue, or all queues."))
        queues = list(
            session.scalars(
                select(Queue).where(Queue.organisation_id == actor.organisation_id, Queue.id.in_(wanted))
            )
        )
        if len(queues) != len(wanted):
            raise ChangeRefused("queues", _("Choose among your own queues."))
    closure = Closure(
        organisation_id=actor.organisation_id,
        all_queues=queue_ids is None,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        message=message,
        created_by_id=actor.id,
        created_at=now,
    )
    closure.queues = queues
    session.add(closure)
    session.flush()
    values = snapshot(closure, CLOSURE_FIELDS) | {"queues": sorted(q.slug for q in queues) or None}
    record(session, actor, "closure.create", closure, created(values), at=now)
    return closure


def end_closure(session: Session, actor: Actor, closure: Closure, now: datetime) -> None:
    """End it now: a closure that has not started yet is ended before it begins."""
    if closure.ended_early_at is not None or (closure.ends_at is not None and closure.ends_at <= now):
        raise ChangeRefused(None, _("This closure has already ended."))
    closure.ended_early_at = now
    session.flush()
    record(session, actor, "closure.end", closure, {"ended_early_at": [None, now]}, at=now)


def current_closures(session: Session, organisation_id: int, now: datetime) -> list[Closure]:
    """Closures in force now or still to come, soonest first."""
    return list(
        session.scalars(
            select(Closure)
            .where(
                Closure.organisation_id == organisation_id,
                or_(Closure.ends_at.is_(None), Closure.ends_at > now),
                Closure.ended_early_at.is_(None),
            )
            .order_by(Closure.starts_at, Closure.id)
        )
    )


def closure_queue_names(session: Session, closure_ids: Sequence[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    if closure_ids:
        for closure_id, name in session.execute(
            select(ClosureQueue.closure_id, Queue.name)
            .join(Queue, Queue.id == ClosureQueue.queue_id)
            .where(ClosureQueue.closure_id.in_(closure_ids))
            .order_by(Queue.name)
        ):
            names.setdefault(closure_id, []).append(name)
    return names
