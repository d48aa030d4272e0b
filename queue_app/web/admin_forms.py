"""The admin pages' forms. Each help text says what the caller or operator will experience.

A field's value is checked with the config file's own rule (`config_schema`), wrapped by `Rule`, so
the page and `config import` accept exactly the same values; the message is translated here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..models import (
    ClosedAction,
    ClosingWhileWaiting,
    Language,
    NoOperatorAction,
    OverflowAction,
    Plan,
    Role,
    RuleEffect,
    Strategy,
)
from ..services import config_schema
from ..services.config_schema import QUEUE_FIELDS, Invalid

_BETWEEN = re.compile(r"must be between (-?\d+) and (-?\d+)")


def translate_invalid(message: str) -> str:
    """The config file's English message for a bad value, as the page says it."""
    if match := _BETWEEN.search(message):
        return _("Must be between %(low)s and %(high)s.", low=match.group(1), high=match.group(2))
    if message.startswith("not E.164"):
        return _("Not a phone number in international form; write it as +46812345678.")
    if message.startswith("not a time zone"):
        return _("Not a time zone (e.g. Europe/Stockholm).")
    if message.startswith("not a country"):
        return _("Not a country whose public holidays Kö knows (e.g. SE).")
    if message.startswith("must be a slug"):
        return _("Lower-case letters, digits and hyphens only, at most 64.")
    if message.startswith("not a valid e-mail"):
        return _("Not a valid e-mail address.")
    if message.startswith("must be at most"):
        return _("Too long.")
    return message


class Rule:
    """A validator that applies one of the config file's parsers to the field's value."""

    def __init__(self, parse: Callable[[Any], Any]) -> None:
        self.parse = parse

    def __call__(self, form: FlaskForm, field: Any) -> None:
        if field.data is None or field.data == "":
            return
        try:
            self.parse(field.data)
        except Invalid as exc:
            raise ValidationError(translate_invalid(str(exc))) from None


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def queue_rule(name: str) -> Rule:
    return Rule(QUEUE_FIELDS[name].parse)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def options(pairs: Any) -> list[SelectChoice]:
    """SelectField choices as WTForms 3.3 wants them (tuples are deprecated)."""
    return [SelectChoice(value, label) for value, label in pairs]


def optional_int(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(value)


# --- Queues -----------------------------------------------------------------------------------------


def _seconds(name: str, label: Any, help_text: Any, *, optional: bool = False) -> IntegerField:
    first = Optional() if optional else InputRequired(_l("Enter a number."))
    return IntegerField(label, [first, queue_rule(name)], description=help_text)


def _number(label: Any, help_text: Any) -> StringField:
    return StringField(label, [Optional(), Rule(config_schema.e164)], filters=[strip], description=help_text)


class QueueForm(FlaskForm):
    name = StringField(
        _l("Name"),
        [DataRequired(_l("Give the queue a name.")), Length(max=100)],
        filters=[strip],
        description=_l("Operators see this name in the console; callers never hear it."),
    )
    slug = StringField(
        _l("Short name"),
        [DataRequired(_l("Give the queue a short name.")), Rule(config_schema.slug)],
        filters=[strip],
        description=_l("Used in links and in configuration files, e.g. vaxeln."),
    )
    schedule_id = SelectField(
        _l("Opening hours"),
        coerce=optional_int,
        description=_l("Outside these hours callers hear the closing message. None: always open."),
    )
    strategy = SelectField(
        _l("Distribution"),
        choices=options(
            [
                (Strategy.FAIR.value, _l("Fair: the operator who has taken fewest calls")),
                (Strategy.LONGEST_IDLE.value, _l("Longest idle: the operator free the longest")),
                (Strategy.ROUND_ROBIN.value, _l("Round robin: each operator in turn")),
                (Strategy.PARALLEL.value, _l("Parallel: ring several operators at once")),
                (Strategy.RING_ALL.value, _l("Ring all free operators")),
            ]
        ),
        description=_l("Which free operator's phone rings first when a caller waits."),
    )
    parallel_count = _seconds(
        "parallel_count",
        _l("Operators rung at once"),
        _l(
            "With parallel ringing: how many operators ring at the same time; the first to answer "
            "gets the call."
        ),
    )
    ring_timeout_seconds = _seconds(
        "ring_timeout_seconds",
        _l("Ring time (seconds)"),
        _l("How long an operator's phone rings before the call goes to the next one (5–600)."),
    )
    wrap_up_seconds = _seconds(
        "wrap_up_seconds",
        _l("Wrap-up time (seconds)"),
        _l("Time after each call before the operator is offered the next one."),
    )
    max_missed_offers = _seconds(
        "max_missed_offers",
        _l("Log out after unanswered calls"),
        _l("An operator who lets this many calls in a row ring out is logged out. 0: never."),
    )
    skill_widen_after_seconds = _seconds(
        "skill_widen_after_seconds",
        _l("Widen skills after (seconds)"),
        _l("After this long, a caller who needs a skill is offered to any operator. Empty: never."),
        optional=True,
    )
    priority = _seconds(
        "priority",
        _l("Priority"),
        _l("Operators in several queues are offered callers of higher-priority queues first."),
    )
    welcome_enabled = BooleanField(
        _l("Welcome message"), description=_l("Callers hear the welcome message before they join the queue.")
    )
    first_message_enabled = BooleanField(
        _l("First queue message"),
        description=_l("Callers hear \u201cyour call has been placed in a queue\u201d."),
    )
    periodic_message_enabled = BooleanField(
        _l("Repeated message"), description=_l("Callers hear the periodic message again while they wait.")
    )
    periodic_interval_seconds = _seconds(
        "periodic_interval_seconds",
        _l("Repeat every (seconds)"),
        _l("How often the repeated message is played."),
    )
    announce_position = BooleanField(
        _l("Say the place in the queue"),
        description=_l("Callers hear \u201cyou are number 2 in the queue\u201d."),
    )
    announce_expected_wait = BooleanField(
        _l("Say the expected wait"),
        description=_l("Callers hear \u201cthe expected wait is about 3 minutes\u201d."),
    )
    announce_interval_seconds = _seconds(
        "announce_interval_seconds",
        _l("Announce every (seconds)"),
        _l("How often the place and expected wait are said again."),
    )
    closed_action = SelectField(
        _l("When closed"),
        choices=options(
            [
                (ClosedAction.HANGUP.value, _l("Play the closing message and hang up")),
                (ClosedAction.FORWARD.value, _l("Forward the call to a number")),
            ]
        ),
        description=_l("What a caller gets outside opening hours, on holidays and during closures."),
    )
    closed_forward_number = _number(
        _l("Forward to when closed"), _l("In international form, e.g. +46812345678.")
    )
    closing_while_waiting = SelectField(
        _l("Callers waiting at closing time"),
        choices=options(
            [
                (ClosingWhileWaiting.SERVE.value, _l("Are still served")),
                (ClosingWhileWaiting.CLOSE.value, _l("Hear the closing message")),
            ]
        ),
        description=_l("What happens to callers already in the queue when it closes."),
    )
    overflow_max_callers = _seconds(
        "overflow_max_callers",
        _l("Close when this many wait"),
        _l("New callers get the overflow treatment while this many are waiting. Empty: no limit."),
        optional=True,
    )
    overflow_max_wait_seconds = _seconds(
        "overflow_max_wait_seconds",
        _l("Close when the wait exceeds (seconds)"),
        _l("New callers get the overflow treatment while the expected wait is longer. Empty: no limit."),
        optional=True,
    )
    overflow_action = SelectField(
        _l("Overflow"),
        choices=options(
            [
                (OverflowAction.BUSY.value, _l("Busy signal")),
                (OverflowAction.FORWARD.value, _l("Forward the call to a number")),
            ]
        ),
        description=_l("What a new caller gets while the queue is full."),
    )
    overflow_forward_number = _number(
        _l("Forward to on overflow"), _l("In international form, e.g. +46812345678.")
    )
    no_operator_action = SelectField(
        _l("Nobody logged in"),
        choices=options(
            [
                (NoOperatorAction.QUEUE.value, _l("Callers wait in the queue anyway")),
                (NoOperatorAction.FORWARD.value, _l("Forward the call to a number")),
                (NoOperatorAction.CLOSE.value, _l("Treat the queue as closed")),
            ]
        ),
        description=_l("What a caller gets when no operator is logged in to the queue."),
    )
    no_operator_forward_number = _number(
        _l("Forward to when nobody is logged in"), _l("In international form, e.g. +46812345678.")
    )
    callback_enabled = BooleanField(
        _l("Offer a call back"),
        description=_l("Callers may press a key to be called back and keep their place."),
    )
    voicemail_enabled = BooleanField(
        _l("Offer to leave a message"), description=_l("Callers may press a key to leave a voice message.")
    )
    caller_options_after_seconds = _seconds(
        "caller_options_after_seconds",
        _l("Offer the options after (seconds)"),
        _l("How long a caller waits before hearing the call-back and message options."),
    )
    language = SelectField(
        _l("Language"),
        choices=options([(Language.SV.value, "Svenska"), (Language.EN.value, "English")]),
        description=_l("The language of the messages callers hear."),
    )
    voice = StringField(
        _l("Voice"),
        [Optional(), Length(max=64)],
        filters=[strip],
        description=_l("The text-to-speech voice, e.g. Polly.Astrid. Empty: the organisation's default."),
    )


QUEUE_GROUPS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (_l("Queue"), ("name", "slug", "schedule_id")),
    (
        _l("Distribution"),
        (
            "strategy",
            "parallel_count",
            "ring_timeout_seconds",
            "wrap_up_seconds",
            "max_missed_offers",
            "skill_widen_after_seconds",
            "priority",
        ),
    ),
    (
        _l("Announcements"),
        (
            "welcome_enabled",
            "first_message_enabled",
            "periodic_message_enabled",
            "periodic_interval_seconds",
            "announce_position",
            "announce_expected_wait",
            "announce_interval_seconds",
        ),
    ),
    (_l("Closed"), ("closed_action", "closed_forward_number", "closing_while_waiting")),
    (
        _l("Overflow"),
        (
            "overflow_max_callers",
            "overflow_max_wait_seconds",
            "overflow_action",
            "overflow_forward_number",
            "no_operator_action",
            "no_operator_forward_number",
        ),
    ),
    (_l("Caller options"), ("callback_enabled", "voicemail_enabled", "caller_options_after_seconds")),
    (_l("Language & voice"), ("language", "voice")),
)


def form_values(form: FlaskForm, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields' data for a service; empty text becomes None."""
    return {name: (None if form[name].data == "" else form[name].data) for name in names}


# --- Opening hours ----------------------------------------------------------------------------------


class ScheduleForm(FlaskForm):
    name = StringField(
        _l("Name"),
        [DataRequired(_l("Give the opening hours a name.")), Length(max=100)],
        filters=[strip],
        description=_l("E.g. Office hours; several queues can share the same hours."),
    )
    timezone = StringField(
        _l("Time zone"),
        [Optional(), Rule(config_schema.timezone)],
        filters=[strip],
        description=_l("The times below are in this zone. Empty: the organisation's time zone."),
    )


class ScheduleSettingsForm(ScheduleForm):
    categories = MultiCheckboxField(
        _l("Closed on"),
        description=_l("On these holidays callers hear the holiday closing message all day."),
    )


ORDINALS = (
    ("1", _l("first")),
    ("2", _l("second")),
    ("3", _l("third")),
    ("4", _l("fourth")),
    ("-1", _l("last")),
)
WEEKDAY_CHOICES = (
    ("MO", _l("Monday")),
    ("TU", _l("Tuesday")),
    ("WE", _l("Wednesday")),
    ("TH", _l("Thursday")),
    ("FR", _l("Friday")),
    ("SA", _l("Saturday")),
    ("SU", _l("Sunday")),
)
MONTHS = tuple((str(n), str(n)) for n in range(1, 13))


class RuleForm(FlaskForm):
    effect = SelectField(
        _l("The queue is"),
        choices=options([(RuleEffect.OPEN.value, _l("Open")), (RuleEffect.CLOSED.value, _l("Closed"))]),
        description=_l("Closed rules cut holes in open ones, e.g. closed for lunch 12:00–13:00."),
    )
    frequency = SelectField(
        _l("Repeats"),
        choices=options(
            [
                ("weekly", _l("On these weekdays")),
                ("daily", _l("Every day")),
                ("monthly_weekday", _l("On a weekday of the month (e.g. the first Monday)")),
                ("monthly_day", _l("On a day of every month")),
                ("yearly", _l("Every year on a date")),
                ("custom", _l("Custom RRULE")),
            ]
        ),
    )
    weekdays = MultiCheckboxField(_l("Weekdays"), choices=options(WEEKDAY_CHOICES))
    month_ordinal = SelectField(
        _l("Which"), choices=options(ORDINALS), coerce=optional_int, validate_choice=False
    )
    month_weekday = SelectField(_l("Weekday"), choices=options(WEEKDAY_CHOICES), validate_choice=False)
    month_day = IntegerField(_l("Day of the month"), [Optional()], description=_l("-1 is the last day."))
    year_day = IntegerField(_l("Day"), [Optional()])
    year_month = SelectField(_l("Month"), choices=options(MONTHS), coerce=optional_int, validate_choice=False)
    custom = StringField(
        _l("RRULE"),
        [Optional(), Length(max=255)],
        filters=[strip],
        description=_l("An iCalendar rule, e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=FR for every other Friday."),
    )
    starts = TimeField(_l("From"), [InputRequired(_l("Enter a time."))])
    ends = TimeField(
        _l("To"), [InputRequired(_l("Enter a time."))], description=_l("00:00–00:00 means the whole day.")
    )
    valid_from = DateField(_l("First day"), [Optional()], description=_l("Empty: from now on."))
    valid_until = DateField(_l("Last day"), [Optional()], description=_l("Empty: no end."))
    label = StringField(
        _l("Label"),
        [Optional(), Length(max=200)],
        filters=[strip],
        description=_l("Shown in the preview, e.g. Lunch."),
    )

    def validate_month_day(self, field: Any) -> None:
        if field.data is not None and (field.data == 0 or not -31 <= field.data <= 31):
            raise ValidationError(_("Must be between %(low)s and %(high)s.", low=1, high=31))

    def validate_year_day(self, field: Any) -> None:
        if field.data is not None and not 1 <= field.data <= 31:
            raise ValidationError(_("Must be between %(low)s and %(high)s.", low=1, high=31))


class ExceptionForm(FlaskForm):
    day = DateField(_l("Date"), [InputRequired(_l("Enter a date."))])
    closed = BooleanField(_l("Closed all day"), description=_l("Callers hear the closing message all day."))
    opens = TimeField(_l("Opens"), [Optional()])
    closes = TimeField(_l("Closes"), [Optional()], description=_l("Open only between these times that day."))
    # Its own id: the rule form on the same page has a field called label too.
    label = StringField(
        _l("Label"),
        [Optional(), Length(max=200)],
        filters=[strip],
        description=_l("E.g. Staff day."),
        id="exception_label",
    )


class NeededWhen:
    """Required while another field has a value (a choice shows it); otherwise ignored entirely."""

    def __init__(self, other: str, value: str, message: Any) -> None:
        self.other, self.value, self.message = other, value, message

    def __call__(self, form: FlaskForm, field: Any) -> None:
        if form[self.other].data != self.value:
            field.errors[:] = []
            raise StopValidation()
        if field.data is None:
            field.errors[:] = []
            raise StopValidation(str(self.message))


class ClosureForm(FlaskForm):
    all_queues = BooleanField(_l("All queues"), description=_l("Also queues added while the closure lasts."))
    queues = MultiCheckboxField(_l("Queues"), coerce=int)
    start = SelectField(
        _l("Starts"), choices=options([("now", _l("Now")), ("at", _l("At a time"))]), description=None
    )
    starts_at = DateTimeLocalField(
        _l("Start time"), [NeededWhen("start", "at", _l("Enter the start time."))], format="%Y-%m-%dT%H:%M"
    )
    end = SelectField(
        _l("Ends"),
        choices=options(
            [
                ("duration", _l("After a while")),
                ("at", _l("At a time")),
                ("open", _l("When someone ends it")),
            ]
        ),
    )
    duration_minutes = IntegerField(
        _l("Minutes"),
        [NeededWhen("end", "duration", _l("Enter how many minutes."))],
        description=_l("E.g. 60 closes the queues for an hour."),
    )
    ends_at = DateTimeLocalField(
        _l("End time"), [NeededWhen("end", "at", _l("Enter the end time."))], format="%Y-%m-%dT%H:%M"
    )
    reason = StringField(
        _l("Reason"),
        [Optional(), Length(max=200)],
        filters=[strip],
        description=_l("For you and the operators, e.g. Staff meeting."),
    )
    message = TextAreaField(
        _l("Message to callers"),
        [Optional(), Length(max=5000)],
        filters=[strip],
        description=_l("Read to callers instead of the closing message. Empty: the usual closing message."),
    )

    def validate_duration_minutes(self, field: Any) -> None:
        if not 1 <= field.data <= 60 * 24 * 366:
            raise ValidationError(_("Must be between %(low)s and %(high)s.", low=1, high=60 * 24 * 366))


# --- Users and members ------------------------------------------------------------------------------

PLAN_CHOICES = [
    (Plan.BASIC.value, _l("Basic (cannot take calls)")),
    (Plan.PRO.value, "Pro"),
    (Plan.BUSINESS.value, "Business"),
    (Plan.ENTERPRISE.value, "Enterprise"),
]
ROLE_CHOICES = [(Role.OPERATOR.value, _l("Operator")), (Role.ADMIN.value, _l("Administrator"))]
LOCALE_CHOICES = [("", _l("The organisation's language")), ("sv", "Svenska"), ("en", "English")]


class UserForm(FlaskForm):
    name = StringField(_l("Name"), [DataRequired(_l("Enter the name.")), Length(max=200)], filters=[strip])
    role = SelectField(
        _l("Role"),
        choices=options(ROLE_CHOICES),
        description=_l("Administrators can change everything on these pages."),
    )
    plan = SelectField(
        _l("Plan"),
        choices=options(PLAN_CHOICES),
        description=_l("Pro, Business and Enterprise include logging in to queues to take calls."),
    )
    phone_number = StringField(
        _l("Phone"),
        [Optional(), Rule(config_schema.e164)],
        filters=[strip],
        description=_l("Calls are offered to this phone when the operator does not use the browser."),
    )
    client_identity = StringField(
        _l("Browser identity"),
        [Optional(), Length(max=128)],
        filters=[strip],
        description=_l("The name the browser phone registers with; letters, digits and _."),
    )
    locale = SelectField(_l("Language"), choices=options(LOCALE_CHOICES))

    def validate_client_identity(self, field: Any) -> None:
        if field.data and not config_schema.CLIENT_IDENTITY.match(field.data):
            raise ValidationError(_("Only letters A–Z, digits and _."))


class NewUserForm(UserForm):
    email = StringField(
        _l("E-mail"),
        [DataRequired(_l("Enter the e-mail address.")), Rule(config_schema.email)],
        filters=[strip],
        description=_l("The user logs in with this address."),
    )
    invite = BooleanField(
        _l("Invite by e-mail"),
        default=True,
        description=_l(
            "The user gets an e-mail with a link to choose their own password; it works once, for 7 days."
        ),
    )
    set_password = BooleanField(
        _l("Make a temporary password"),
        default=False,
        description=_l("Shown once after saving; give it to the user yourself."),
    )


class EditUserForm(UserForm):
    is_active = BooleanField(
        _l("Active"), description=_l("An inactive user cannot log in and holds no licence.")
    )


class SkillForm(FlaskForm):
    name = StringField(
        _l("New skill"),
        [DataRequired(_l("Enter a name.")), Length(max=64)],
        filters=[strip],
        description=_l("E.g. English or Invoices; queues can prefer operators with a skill."),
    )


# --- Organisation -----------------------------------------------------------------------------------


class OrganisationForm(FlaskForm):
    name = StringField(_l("Name"), [DataRequired(_l("Enter the name.")), Length(max=200)], filters=[strip])
    timezone = StringField(
        _l("Time zone"),
        [DataRequired(_l("Enter a time zone.")), Rule(config_schema.timezone)],
        filters=[strip],
        description=_l("Opening hours and times on every page are in this zone."),
    )
    locale = SelectField(
        _l("Language"),
        choices=options([("sv", "Svenska"), ("en", "English")]),
        description=_l("The language of the pages for users who have not chosen their own."),
    )
    holiday_country = StringField(
        _l("Holiday country"),
        [DataRequired(_l("Enter a country code.")), Rule(config_schema.country)],
        filters=[lambda v: v.strip().upper() if isinstance(v, str) else v],
        description=_l("Whose public holidays the opening hours offer, e.g. SE."),
    )
    default_voice = StringField(
        _l("Default voice"),
        [Optional(), Length(max=64)],
        filters=[strip],
        description=_l("The text-to-speech voice callers hear unless a queue chooses another."),
    )


class NumberForm(FlaskForm):
    number = StringField(
        _l("Number"),
        [DataRequired(_l("Enter the number.")), Rule(config_schema.e164)],
        filters=[strip],
        description=_l("In international form, e.g. +46812345678."),
    )
    label = StringField(_l("Label"), [Optional(), Length(max=100)], filters=[strip])
    queue_id = SelectField(
        _l("Reaches"), coerce=optional_int, description=_l("Callers who dial this number join this queue.")
    )
    records_prompts = BooleanField(
        _l("Records prompts"),
        description=_l(
            "Admins dial this number and enter a PIN from the prompt page to record a prompt. Point its "
            "Voice webhook at /twilio/record-prompt/dial-in; it reaches no queue."
        ),
    )


class EditNumberForm(NumberForm):
    number = None  # type: ignore[assignment]


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    user = SelectField(_l("User"), coerce=optional_int, validators=[Optional()])
    # Also a prefix such as "queue", which matches queue.create, queue.update …
    action = SelectField(_l("Action"), validators=[Optional()], validate_choice=False)
    since = DateField(_l("From"), [Optional()])
    until = DateField(_l("To"), [Optional()])


class EmptyForm(FlaskForm):
    """A button that changes something: only the CSRF token."""
