"""The data model of the whole product, as typed SQLAlchemy 2.0 mappings.

Every row that belongs to a customer carries `organisation_id`, and every query in a service is
scoped by it. Times are UTC (`UTCDateTime`); wall-clock times of opening hours are local `Time`s
interpreted in the organisation's (or schedule's) time zone. Enumerations are stored as short strings
with CHECK constraints, so SQLite and PostgreSQL hold identical schemas.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from .db import Base, UTCDateTime, utcnow
from .domain.states import FINAL_CALL_STATES as FINAL_CALL_STATES
from .domain.states import Call as CallState
from .domain.states import Operator as OperatorState

# BIGINT on PostgreSQL, INTEGER (a rowid alias, so autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def check_in(column: str, values: type[StrEnum], name: str | None = None) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or f"{column}_valid")


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"


class Plan(StrEnum):
    BASIC = "basic"
    PRO = "pro"
    BUSINESS = "business"
    ENTERPRISE = "enterprise"


PLANS_THAT_MAY_LOG_IN = frozenset({Plan.PRO, Plan.BUSINESS, Plan.ENTERPRISE})


class Strategy(StrEnum):
    FAIR = "fair"
    ROUND_ROBIN = "round_robin"
    LONGEST_IDLE = "longest_idle"
    PARALLEL = "parallel"
    RING_ALL = "ring_all"


class ClosedAction(StrEnum):
    HANGUP = "hangup"
    FORWARD = "forward"


class OverflowAction(StrEnum):
    BUSY = "busy"
    FORWARD = "forward"


class NoOperatorAction(StrEnum):
    QUEUE = "queue"
    FORWARD = "forward"
    CLOSE = "close"


class ClosingWhileWaiting(StrEnum):
    SERVE = "serve"
    CLOSE = "close"


class Language(StrEnum):
    SV = "sv"
    EN = "en"


class RuleEffect(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class PromptKind(StrEnum):
    WELCOME = "welcome"
    FIRST_QUEUE_MESSAGE = "first_queue_message"
    PERIODIC_MESSAGE = "periodic_message"
    CLOSED_HOURS = "closed_hours"
    CLOSED_HOLIDAY = "closed_holiday"
    CLOSED_CLOSURE = "closed_closure"
    OVERFLOW = "overflow"
    NO_OPERATOR = "no_operator"
    CAMP_ON = "camp_on"
    CALLBACK_OFFER = "callback_offer"
    VOICEMAIL = "voicemail"
    HOLD_MUSIC = "hold_music"


class OfferState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"
    CANCELED = "canceled"  # another operator won, or the caller hung up


class TransferKind(StrEnum):
    BLIND = "blind"
    CONSULT = "consult"


class TransferState(StrEnum):
    DIALING = "dialing"
    CONSULTING = "consulting"
    CONNECTED = "connected"
    CAMPED_ON = "camped_on"
    RECALLED = "recalled"
    CANCELED = "canceled"


class Availability(StrEnum):
    FREE = "free"
    BUSY = "busy"
    AWAY = "away"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class TemplateChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    ANY = "any"


class MissedCallStatus(StrEnum):
    OPEN = "open"
    HANDLED = "handled"


def _now() -> datetime:
    return utcnow()


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Stockholm")
    locale: Mapped[str] = mapped_column(String(8), default="sv")
    holiday_country: Mapped[str] = mapped_column(String(8), default="SE")
    default_voice: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (check_in("role", Role), check_in("plan", Plan))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.OPERATOR.value)
    plan: Mapped[str] = mapped_column(String(16), default=Plan.BASIC.value)
    # The browser device: `<Dial><Client>` rings this identity. Stable and [A-Za-z0-9_].
    client_identity: Mapped[str | None] = mapped_column(String(128), unique=True)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(8))
    is_active: Mapped[bool] = mapped_column(default=True)
    invite_token_hash: Mapped[str | None] = mapped_column(String(128))
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    organisation: Mapped[Organisation] = relationship()
    skills: Mapped[list[UserSkill]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Skill(Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))


class UserSkill(Base):
    __tablename__ = "user_skills"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 10", name="level_range"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(default=5)

    user: Mapped[User] = relationship(back_populates="skills")
    skill: Mapped[Skill] = relationship()


class Schedule(Base):
    """A named set of opening-hours rules; queues share schedules."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # None: the organisation's time zone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Which `holidays` categories close the queue, e.g. ["public", "de_facto"].
    holiday_categories: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["public", "de_facto"])

    rules: Mapped[list[ScheduleRule]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", order_by="ScheduleRule.position"
    )
    holiday_choices: Mapped[list[HolidayChoice]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan"
    )
    exceptions: Mapped[list[ScheduleException]] = relationship(
        back_populates="schedule", cascade="all, delete-orphan", order_by="ScheduleException.day"
    )


class ScheduleRule(Base):
    """Open (or closed) between two local times on the days an RRULE selects.

    `rrule` is an iCalendar recurrence such as `FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR` or
    `FREQ=MONTHLY;BYDAY=1MO`; `closed` rules punch holes in `open` ones.
    """

    __tablename__ = "schedule_rules"
    __table_args__ = (check_in("effect", RuleEffect),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    effect: Mapped[str] = mapped_column(String(8), default=RuleEffect.OPEN.value)
    rrule: Mapped[str] = mapped_column(String(255))
    starts: Mapped[time] = mapped_column()
    ends: Mapped[time] = mapped_column()
    valid_from: Mapped[date | None] = mapped_column()
    valid_until: Mapped[date | None] = mapped_column()
    label: Mapped[str | None] = mapped_column(String(200))

    schedule: Mapped[Schedule] = relationship(back_populates="rules")


class HolidayChoice(Base):
    """Overrides the schedule's categories for one named holiday (e.g. open on Whit Monday)."""

    __tablename__ = "holiday_choices"
    __table_args__ = (UniqueConstraint("schedule_id", "holiday_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    holiday_name: Mapped[str] = mapped_column(String(200))
    closed: Mapped[bool] = mapped_column(default=True)

    schedule: Mapped[Schedule] = relationship(back_populates="holiday_choices")


class ScheduleException(Base):
    """A custom date: closed all day (no times) or open only between the given times."""

    __tablename__ = "schedule_exceptions"
    __table_args__ = (UniqueConstraint("schedule_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column()
    opens: Mapped[time | None] = mapped_column()
    closes: Mapped[time | None] = mapped_column()
    label: Mapped[str | None] = mapped_column(String(200))

    schedule: Mapped[Schedule] = relationship(back_populates="exceptions")


class Queue(Base):
    __tablename__ = "queues"
    __table_args__ = (
        UniqueConstraint("organisation_id", "slug"),
        check_in("strategy", Strategy),
        check_in("language", Language),
        check_in("closed_action", ClosedAction),
        check_in("overflow_action", OverflowAction),
        check_in("no_operator_action", NoOperatorAction),
        check_in("closing_while_waiting", ClosingWhileWaiting),
        CheckConstraint("ring_timeout_seconds BETWEEN 5 AND 600", name="ring_timeout_range"),
        CheckConstraint("wrap_up_seconds >= 0", name="wrap_up_nonnegative"),
        CheckConstraint("parallel_count >= 1", name="parallel_count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default=Language.SV.value)
    voice: Mapped[str | None] = mapped_column(String(64))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))

    # Distribution
    strategy: Mapped[str] = mapped_column(String(16), default=Strategy.FAIR.value)
    parallel_count: Mapped[int] = mapped_column(default=1)
    ring_timeout_seconds: Mapped[int] = mapped_column(default=20)
    wrap_up_seconds: Mapped[int] = mapped_column(default=30)
    max_missed_offers: Mapped[int] = mapped_column(default=3)  # 0: never log out automatically
    skill_widen_after_seconds: Mapped[int | None] = mapped_column()
    priority: Mapped[int] = mapped_column(default=0)

    # Announcements
    welcome_enabled: Mapped[bool] = mapped_column(default=True)
    first_message_enabled: Mapped[bool] = mapped_column(default=True)
    periodic_message_enabled: Mapped[bool] = mapped_column(default=True)
    periodic_interval_seconds: Mapped[int] = mapped_column(default=60)
    announce_position: Mapped[bool] = mapped_column(default=True)
    announce_expected_wait: Mapped[bool] = mapped_column(default=True)
    announce_interval_seconds: Mapped[int] = mapped_column(default=60)

    # Closed (hours, holiday, closure)
    closed_action: Mapped[str] = mapped_column(String(16), default=ClosedAction.HANGUP.value)
    closed_forward_number: Mapped[str | None] = mapped_column(String(32))
    closing_while_waiting: Mapped[str] = mapped_column(String(16), default=ClosingWhileWaiting.SERVE.value)

    # Overflow: close automatically when too many wait or the wait is too long.
    overflow_max_callers: Mapped[int | None] = mapped_column()
    overflow_max_wait_seconds: Mapped[int | None] = mapped_column()
    overflow_action: Mapped[str] = mapped_column(String(16), default=OverflowAction.BUSY.value)
    overflow_forward_number: Mapped[str | None] = mapped_column(String(32))
    overflow_active: Mapped[bool] = mapped_column(default=False)
    overflow_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Nobody logged in
    no_operator_action: Mapped[str] = mapped_column(String(16), default=NoOperatorAction.QUEUE.value)
    no_operator_forward_number: Mapped[str | None] = mapped_column(String(32))

    # Caller options while waiting
    callback_enabled: Mapped[bool] = mapped_column(default=False)
    voicemail_enabled: Mapped[bool] = mapped_column(default=False)
    caller_options_after_seconds: Mapped[int] = mapped_column(default=120)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    schedule: Mapped[Schedule | None] = relationship()
    required_skills: Mapped[list[QueueSkill]] = relationship(
        back_populates="queue", cascade="all, delete-orphan"
    )
    memberships: Mapped[list[QueueMembership]] = relationship(
        back_populates="queue", cascade="all, delete-orphan"
    )
    phone_numbers: Mapped[list[PhoneNumber]] = relationship(back_populates="queue")


class QueueSkill(Base):
    __tablename__ = "queue_skills"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    min_level: Mapped[int] = mapped_column(default=1)

    queue: Mapped[Queue] = relationship(back_populates="required_skills")
    skill: Mapped[Skill] = relationship()


class QueueMembership(Base):
    __tablename__ = "queue_memberships"
    __table_args__ = (UniqueConstraint("queue_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    may_see: Mapped[bool] = mapped_column(default=True)
    may_log_in: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    queue: Mapped[Queue] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164
    label: Mapped[str | None] = mapped_column(String(100))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    twilio_sid: Mapped[str | None] = mapped_column(String(64))
    # The number an admin dials to record a prompt (its Voice URL is /twilio/record-prompt/dial-in).
    records_prompts: Mapped[bool] = mapped_column(default=False, server_default=false())

    queue: Mapped[Queue | None] = relationship(back_populates="phone_numbers")


class Closure(Base):
    """A temporary closure of one or many queues, with its own message; can be ended early."""

    __tablename__ = "closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    all_queues: Mapped[bool] = mapped_column(default=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: until ended
    ended_early_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    queues: Mapped[list[Queue]] = relationship(secondary="closure_queues")


class ClosureQueue(Base):
    __tablename__ = "closure_queues"

    closure_id: Mapped[int] = mapped_column(ForeignKey("closures.id", ondelete="CASCADE"), primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)


class Prompt(Base):
    """What a caller hears at one moment: text read by a voice, or an audio file."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("organisation_id", "queue_id", "kind", "language"),
        check_in("kind", PromptKind),
        check_in("language", Language),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default=Language.SV.value)
    text: Mapped[str | None] = mapped_column(Text)
    audio_key: Mapped[str | None] = mapped_column(String(255))
    audio_content_type: Mapped[str | None] = mapped_column(String(64))
    audio_duration_seconds: Mapped[float | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now, onupdate=_now)


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        check_in("state", CallState),
        # Fair distribution counts each operator's calls answered since the start of the day.
        Index("ix_calls_answered_by", "answered_by_id", "answered_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default=CallState.ARRIVED.value)
    priority: Mapped[int] = mapped_column(default=0)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Kept when the caller returns to the queue after a missed offer: their place is their place.
    entered_queue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    required_skills: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    outcome_reason: Mapped[str | None] = mapped_column(String(64))
    # What the caller has heard so far, so each waitUrl fetch plans the next piece.
    announcement_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_estimate_seconds: Mapped[int | None] = mapped_column()
    last_status_sequence: Mapped[int] = mapped_column(default=-1)
    callback_number: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=0)
    # The caller's own Twilio queue (`koe-caller-<id>`, its QueueSid from the Enqueue action). Twilio
    # keeps a queue until it is deleted: the worker deletes it once the call has ended, then clears this.
    twilio_queue_sid: Mapped[str | None] = mapped_column(String(64))

    queue: Mapped[Queue | None] = relationship()


# The dispatcher reads the head of each queue: highest priority first, then the longest waiting.
Index(
    "ix_calls_queue_order",
    Call.queue_id,
    Call.state,
    Call.priority.desc(),
    Call.entered_queue_at,
    Call.id,
)
# The waitUrl reads a queue's line in order (services/calls.py): only calls that hold a place.
_IN_QUEUE = text("state IN ('waiting', 'offered', 'callback_pending')")
Index(
    "ix_calls_queue_line",
    Call.queue_id,
    Call.priority.desc(),
    Call.entered_queue_at,
    Call.id,
    postgresql_where=_IN_QUEUE,
    sqlite_where=_IN_QUEUE,
)
# A queue's handling history (services/calls.py `_recent_calls`): its last calls to have ended.
Index("ix_calls_queue_ended", Call.queue_id, Call.ended_at)


# Calls whose Twilio queue still exists (services/calls.py `spent_queues`): few rows, the live calls.
_QUEUE_KEPT = text("twilio_queue_sid IS NOT NULL")
Index("ix_calls_twilio_queue", Call.id, postgresql_where=_QUEUE_KEPT, sqlite_where=_QUEUE_KEPT)


class CallEvent(Base):
    """Append-only log of what happened to a call; all statistics are computed from it.

    `dedupe_key` makes a retried or duplicated webhook a no-op (e.g. `status:CA…:3`).
    """

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    source: Mapped[str] = mapped_column(String(16), default="app")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)


class OperatorStatus(Base):
    """An operator's current state; one row per user who has ever logged in."""

    __tablename__ = "operator_statuses"
    __table_args__ = (
        check_in("state", OperatorState),
        # The dispatcher looks for available operators, organisation by organisation.
        Index("ix_operator_statuses_state", "state", "organisation_id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=OperatorState.OFFLINE.value)
    state_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    pause_reason: Mapped[str | None] = mapped_column(String(100))
    wrap_up_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_call_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    missed_no_answer: Mapped[int] = mapped_column(default=0)
    missed_declined: Mapped[int] = mapped_column(default=0)
    missed_unreachable: Mapped[int] = mapped_column(default=0)
    logged_out_reason: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(default=0)


class QueueLogin(Base):
    """An operator is logged in to a queue (possibly several at once)."""

    __tablename__ = "queue_logins"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    logged_in_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperatorEvent(Base):
    """Append-only log of operator state changes (log-in, pause, auto-logout …)."""

    __tablename__ = "operator_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Offer(Base):
    """A call ringing at one operator; parallel ringing makes several offers with one group."""

    __tablename__ = "offers"
    __table_args__ = (
        check_in("state", OfferState),
        Index("ix_offers_open", "state", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    group_key: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16), default=OfferState.RINGING.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The operator's own outbound leg, when the caller waits in their queue while it rings
    # (services/offers.py); None for a recall's offer, which rings as the caller's <Dial>.
    leg_sid: Mapped[str | None] = mapped_column(String(64))
    # The leg has ended (its final status came, or the worker hung it up).
    leg_done: Mapped[bool] = mapped_column(default=False, server_default=false())
    # When the leg's <Dial><Queue> took the caller out of their queue (the Queue url's request).
    bridged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Legs still up whose offer is over (another operator won, the caller left): the worker hangs them up.
_STRAY_LEG = text("leg_sid IS NOT NULL AND NOT leg_done AND state NOT IN ('ringing', 'accepted')")
Index("ix_offers_stray_legs", Offer.id, postgresql_where=_STRAY_LEG, sqlite_where=_STRAY_LEG)


class DirectoryEntry(Base):
    __tablename__ = "directory_entries"
    __table_args__ = (check_in("availability", Availability),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    keywords: Mapped[str | None] = mapped_column(Text)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    mobile_number: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    availability: Mapped[str] = mapped_column(String(8), default=Availability.FREE.value)
    away_note: Mapped[str | None] = mapped_column(String(200))
    away_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Lower-cased, diacritics removed: "Åke Öberg ekonomi" -> "ake oberg ekonomi".
    search_text: Mapped[str] = mapped_column(Text, default="")


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (check_in("kind", TransferKind), check_in("state", TransferState))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    directory_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("directory_entries.id", ondelete="SET NULL")
    )
    to_number: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8), default=TransferKind.BLIND.value)
    state: Mapped[str] = mapped_column(String(16), default=TransferState.DIALING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    # A blind transfer: until when the caller camps on. A consult has no camp-on and uses the same
    # column as `alone_check_at` (below).
    camp_on_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recall_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A consult (services/consult.py): the conference the caller waits in, the colleague's leg.
    conference_sid: Mapped[str | None] = mapped_column(String(64))
    consult_call_sid: Mapped[str | None] = mapped_column(String(64))
    # A consult: when the worker looks whether the caller sits alone in the conference (the safety
    # net of services/consult.py). Stored in `camp_on_until`, which a consult does not use.
    alone_check_at: Mapped[datetime | None] = synonym("camp_on_until")


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16), default="voicemail")  # voicemail | prompt
    twilio_url: Mapped[str | None] = mapped_column(String(500))
    storage_key: Mapped[str | None] = mapped_column(String(255))
    duration_seconds: Mapped[float | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    # A prompt recorded by phone (purpose "prompt"): the prompt it replaces, the admin who is called.
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Recording by dialling in: a keyed hash of the one-time PIN, its expiry, the wrong PINs so far.
    pin_hash: Mapped[str | None] = mapped_column(String(128))
    pin_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pin_attempts: Mapped[int] = mapped_column(default=0, server_default="0")


class MissedCall(Base):
    """A caller the switchboard owes a call: hung up waiting, left a message, asked for callback."""

    __tablename__ = "missed_calls"
    __table_args__ = (check_in("status", MissedCallStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(16))  # abandoned | voicemail | callback
    status: Mapped[str] = mapped_column(String(8), default=MissedCallStatus.OPEN.value)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageTemplate(Base):
    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("organisation_id", "name"),
        check_in("channel", TemplateChannel),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(8), default=TemplateChannel.ANY.value)
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)


class SentMessage(Base):
    __tablename__ = "sent_messages"
    __table_args__ = (check_in("channel", Channel), check_in("status", MessageStatus))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id", ondelete="SET NULL"))
    directory_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("directory_entries.id", ondelete="SET NULL")
    )
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # An invitation to this user (it holds a set-password link: never listed with the messages).
    invited_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED.value)
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LicenceEvent(Base):
    """When a user became (or stopped being) licensed: may log in to at least one queue."""

    __tablename__ = "licence_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    licensed: Mapped[bool] = mapped_column()
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
