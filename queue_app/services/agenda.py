"""What the worker has to do now, read in one statement.

Each step of a worker round (`worker.run_pending`) has work only when a stored deadline has come
or a row waits for it: an offer rang past its deadline, a wrap-up ended, a console fell silent, a
caller waits (the closing sweep and the dispatcher), a transfer attempt is due, a message is due,
a recording by phone waits to be placed or fetched. One SELECT of scalar subqueries reads all of
those facts together, on the reading engine (so on SQLite it takes no write lock), and the worker
runs only the steps that have work. A round with nothing to do costs that one statement, and its
next deadline comes from the same row.

Every fact is read by the query its step uses to find its own deadline (`dispatch.
offer_deadline_query`, `operators.wrap_up_end_query` and so on), so the agenda and the steps cannot
disagree about what is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Exists, and_, func, select

from ..domain.states import Call as CallState
from ..extensions import db
from ..models import Call, Queue, Recording
from . import callbacks, consult, dispatch, messages, offers, operators, prompts, transfers, twilio_queues


@dataclass(frozen=True, slots=True)
class Agenda:
    now: datetime
    offer_deadline: datetime | None  # earliest deadline of a ringing offer
    wrap_up_end: datetime | None  # earliest end of a wrap-up in progress
    console_due: bool  # a watched console has been silent for the whole timeout
    console_deadline: datetime | None  # the next instant one will have been (the past is swept)
    transfer_attempt: datetime | None  # earliest next attempt of a transfer
    consult_step: datetime | None  # earliest step of a consult-then-transfer
    message_due: datetime | None  # earliest instant a message waits for
    someone_waits: bool  # a caller in a queue: the closing sweep has something to look at
    callbacks_wait: bool  # a caller waits to be called back (their retry time lives in JSON)
    dispatchable: bool  # an available operator is logged in to a queue where someone waits
    recordings_to_call: bool  # an admin asked to record a prompt by phone
    recordings_to_fetch: bool  # a kept recording to download, or a session to give up on
    stray_legs: bool = False  # an operator's leg still up for an offer that is over
    spent_queues: bool = False  # a Twilio queue of a call that has ended, to delete

    @property
    def offers_expired(self) -> bool:
        # Strictly past, as `offers.reclaim_expired` reads it.
        return self.offer_deadline is not None and self.offer_deadline < self.now

    @property
    def wrap_ups_due(self) -> bool:
        return self.wrap_up_end is not None and self.wrap_up_end <= self.now

    @property
    def transfers_due(self) -> bool:
        return self.transfer_attempt is not None and self.transfer_attempt <= self.now

    @property
    def consult_due(self) -> bool:
        return self.consult_step is not None and self.consult_step <= self.now

    @property
    def messages_due(self) -> bool:
        return self.message_due is not None and self.message_due <= self.now

    def deadlines(self) -> list[datetime]:
        """The stored deadlines this row knows of (as the worker's `next_deadline` always read them)."""
        found = (
            self.offer_deadline,
            self.wrap_up_end,
            self.console_deadline,
            self.transfer_attempt,
            self.consult_step,
            self.message_due,
        )
        return [at for at in found if at is not None]


def _waiting_in_a_queue(*states: str) -> Exists:
    # Driven by the queues, so each probe is a lookup in the calls' (queue, state, ...) index
    # rather than a scan of every call ever made.
    in_queue = select(Call.id).where(Call.queue_id == Queue.id, Call.state.in_(states)).exists()
    return select(Queue.id).where(in_queue).exists()


def _recordings(*statuses: str) -> Exists:
    return (
        select(Recording.id)
        .where(Recording.purpose == prompts.PURPOSE, Recording.status.in_(statuses))
        .exists()
    )


def read(now: datetime, heartbeat_timeout_seconds: int) -> Agenda:
    """The agenda at `now`: one statement on the reading engine."""
    timeout = timedelta(seconds=heartbeat_timeout_seconds)
    cutoff = now - timeout
    consoles = operators.console_last_seen()
    stale: ColumnElement[bool] = and_(
        Recording.purpose == prompts.PURPOSE,
        Recording.status.in_((prompts.PENDING, prompts.CALLING, prompts.RECORDED)),
        Recording.created_at < now - prompts.SESSION_GIVE_UP,
    )
    row = select(
        dispatch.offer_deadline_query().scalar_subquery(),
        operators.wrap_up_end_query().scalar_subquery(),
        select(consoles.c.last_seen).where(consoles.c.last_seen <= cutoff).exists(),
        select(func.min(consoles.c.last_seen)).where(consoles.c.last_seen > cutoff).scalar_subquery(),
        transfers.next_attempt_query().scalar_subquery(),
        consult.next_step_query().scalar_subquery(),
        messages.next_due_query().scalar_subquery(),
        _waiting_in_a_queue(CallState.WAITING.value),
        _waiting_in_a_queue(CallState.CALLBACK_PENDING.value),
        dispatch.anything_to_dispatch(),
        _recordings(prompts.PENDING),
        _recordings(prompts.KEPT) | select(Recording.id).where(stale).exists(),
        offers.stray_legs_exist(),
        twilio_queues.spent_exist(),
    )
    with db.reading() as session:
        values = session.execute(row).one()
    (offer, wrap_up, console_due, last_seen, transfer, consult_step, message, waits, *rest) = values
    callbacks_wait, dispatchable, to_call, to_fetch, stray, spent = rest
    return Agenda(
        now=now,
        offer_deadline=offer,
        wrap_up_end=wrap_up,
        console_due=bool(console_due),
        console_deadline=None if last_seen is None else last_seen + timeout,
        transfer_attempt=transfer,
        consult_step=consult_step,
        message_due=message,
        someone_waits=bool(waits),
        callbacks_wait=bool(callbacks_wait),
        dispatchable=bool(dispatchable),
        recordings_to_call=bool(to_call),
        recordings_to_fetch=bool(to_fetch),
        stray_legs=bool(stray),
        spent_queues=bool(spent),
    )


def next_callback_retry(agenda: Agenda) -> datetime | None:
    """The next callback retry still to come; read only when a callback waits (a second statement)."""
    if not agenda.callbacks_wait:
        return None
    with db.reading() as session:
        return callbacks.next_retry(session, agenda.now)
