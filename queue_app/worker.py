"""The background process: sweeps, the dispatcher, and the REST redirects that follow a commit.

`run_pending(now)` does one round: reclaim offers past their deadline, end due wrap-ups, log out
operators whose console vanished (no heartbeat for HEARTBEAT_TIMEOUT_SECONDS), claim due transfer
attempts, dispatch, and only after those transactions have committed move the callers with
Twilio's REST API. One read of the agenda (`services/agenda.py`) first says which of these steps
have work, and only those run. It returns the next stored deadline it knows of, so a virtual-time
emulator can call it again exactly then. Every timer is derived from a stored deadline (offer
`deadline_at`, `wrap_up_until`, `last_heartbeat_at`, transfer `next_attempt_at`, and the instant a
waiting call's skill widening, counted from its `entered_queue_at`, lets a free operator take it),
so nothing is lost when a worker dies: the next one's sweep repairs it.

`run_forever` runs it as APScheduler jobs: one at the next deadline it returned (moved earlier when
told, by `dispatch.wake()`: an in-process event, and PostgreSQL's NOTIFY koe_wake for web processes
elsewhere) and an interval job, the sweep. SIGTERM finishes the current round, then exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from twilio.base.exceptions import TwilioRestException

from . import get_clock, worker_consult
from .extensions import db
from .services import (
    agenda,
    closing,
    consult,
    dispatch,
    messages,
    operators,
    prompts,
    transfers,
    twilio_queues,
)
from .services import offers as offer_service
from .services.dispatch import CREATE_CALL, PendingRedirect
from .telephony.rest import TwilioRest

log = logging.getLogger("koe.worker")

DEFAULT_INTERVAL_SECONDS = 2.0
# Twilio: 20404 the call does not exist, 21220 "Call is not in-progress. Cannot redirect."
CALLER_GONE_CODES = frozenset({20404, 21220})


# Another worker held an organisation's dispatch lock: look again this soon, in case it read the
# database just before the change that woke us.
BUSY_RETRY_SECONDS = 0.25


def heartbeat_timeout() -> int:
    return int(
        current_app.config.get("HEARTBEAT_TIMEOUT_SECONDS", operators.DEFAULT_HEARTBEAT_TIMEOUT_SECONDS)
    )


def run_pending(now: datetime) -> datetime | None:
    """One round of the worker's work at `now` (inside an app context); the next deadline or None.

    The agenda (one statement) says which steps have work; only those run, so a round with
    nothing to do costs that one statement and takes its next deadline from the same row.
    """
    timeout = heartbeat_timeout()
    todo = agenda.read(now, timeout)
    freed = _end_what_is_due(todo, now, timeout)
    # Closing first: a caller whose queue just closed must not be offered to an operator.
    closed = closing.sweep(now) if todo.someone_waits else closing.Sweep([], None)
    redirects: list[PendingRedirect] = [*closed.redirects]
    if todo.transfers_due:
        redirects += transfers.claim_due(now)
    # Reclaimed offers and ended wrap-ups may have freed what the agenda saw as taken.
    round_ = dispatch.dispatch_round(now) if todo.dispatchable or freed else dispatch.DispatchRound([])
    redirects += round_.redirects
    failed = perform_redirects(redirects, now)
    if todo.stray_legs:
        hang_up_stray_legs()
    if todo.spent_queues:
        delete_spent_queues()
    if todo.consult_due:
        failed += worker_consult.perform(consult.claim_due(now), now)
    # Messages after the calls: a slow mail server must not delay a caller's offer.
    attempts = messages.send_due(now) if todo.messages_due else 0
    recorded = _record_by_phone(todo, now)
    if failed or attempts >= messages.BATCH:
        # A failed redirect freed operators, or more messages wait: another round at once.
        return now
    if freed or redirects or attempts or recorded or todo.consult_due:
        todo = agenda.read(now, timeout)  # what this round changed moved the deadlines
    upcoming = next_deadline(todo, closed.next_closing_at, round_.next_widening_at)
    if round_.busy:
        retry = now + timedelta(seconds=BUSY_RETRY_SECONDS)
        upcoming = retry if upcoming is None else min(upcoming, retry)
    return upcoming


def _end_what_is_due(todo: agenda.Agenda, now: datetime, timeout: int) -> int:
    """Offers past their deadline, wrap-ups at their end, vanished consoles: how many ended."""
    ended = 0
    if todo.offers_expired:
        ended += dispatch.reclaim_expired_offers(now)
    if todo.wrap_ups_due:
        ended += operators.end_due_wrap_ups(now)
    if todo.console_due:
        # Before dispatching: nobody should ring at a console that has gone.
        ended += len(operators.log_out_vanished_consoles(now, timeout))
    return ended


def _record_by_phone(todo: agenda.Agenda, now: datetime) -> bool:
    """Prompts recorded by phone: call the admin who asked, and store what they chose to keep."""
    if todo.recordings_to_call:
        prompts.place_pending_calls(now)
    if todo.recordings_to_fetch:
        prompts.fetch_kept_recordings(now)
    return todo.recordings_to_call or todo.recordings_to_fetch


def perform_redirects(redirects: list[PendingRedirect], now: datetime, rest: TwilioRest | None = None) -> int:
    """Move each caller leg to its new TwiML, or place a callback's call to its operator.

    A failure cancels what the redirect was for (a callback goes back to callback_pending).
    """
    if not redirects:
        return 0
    rest = rest or TwilioRest.from_app()
    base = current_app.config["PUBLIC_BASE_URL"]
    failed = 0
    for redirect in redirects:
        # Closing and transfers hand over redirects of their own shape, without a `kind`.
        creates_call = getattr(redirect, "kind", None) == CREATE_CALL
        try:
            if creates_call:
                sid = rest.create_call(
                    redirect.to or "",
                    redirect.from_ or "",
                    redirect.url(base),
                    status_callback=redirect.status_url(base),
                    timeout=redirect.timeout,
                )
                if redirect.user_id is not None and redirect.group_key:
                    offer_service.leg_created(redirect.group_key, redirect.user_id, sid)
            else:
                rest.redirect_call(redirect.call_sid, redirect.url(base))
        except Exception as exc:  # one bad call must not stop the others
            failed += 1
            # Only a redirected caller leg can be gone; a callback's caller is reached by a new call.
            gone = not creates_call and isinstance(exc, TwilioRestException) and exc.code in CALLER_GONE_CODES
            reason = f"{type(exc).__name__}: {getattr(exc, 'code', '') or exc}"[:200]
            log.warning("redirect of %s to %s failed: %s", redirect.call_sid, redirect.path, reason)
            _undo(redirect, now, reason, gone)
    return failed


def hang_up_stray_legs(rest: TwilioRest | None = None) -> int:
    """Operators' legs that still ring (or talk) for an offer that is over: another operator took
    the call, or the caller left. Twilio cancels nothing of these by itself. Returns how many are
    left for a later round."""
    with db.reading() as session:
        legs = offer_service.stray_legs(session)
    if not legs:
        return 0
    done = _clean_up(legs, (rest or TwilioRest.from_app()).hang_up, "hang up the leg")
    offer_service.legs_hung_up(done)
    return len(legs) - len(done)


def delete_spent_queues(rest: TwilioRest | None = None) -> int:
    """Delete the Twilio queues of calls that have ended (services/twilio_queues.py); returns how
    many are left for a later round."""
    with db.reading() as session:
        queues = twilio_queues.spent(session)
    if not queues:
        return 0
    done = _clean_up(queues, (rest or TwilioRest.from_app()).delete_queue, "delete the queue")
    twilio_queues.deleted(done)
    return len(queues) - len(done)


def delete_leaked_queues(now: datetime, rest: TwilioRest | None = None) -> int:
    """Delete our callers' queues whose SID never reached us (`twilio_queues.leaked`), found in
    Twilio's list of the account's queues; returns how many were deleted."""
    rest = rest or TwilioRest.from_app()
    try:
        listed = list(rest.queues())
    except Exception as exc:  # Twilio unreachable: the next sweep tries again
        log.warning("could not list the Twilio queues: %s", exc)
        return 0
    with db.reading() as session:
        sids = twilio_queues.leaked(session, listed, now)
    done = _clean_up(list(enumerate(sids)), rest.delete_queue, "delete the leaked queue")
    if done:
        log.info("deleted %d leaked Twilio queues", len(done))
    return len(done)


def _clean_up(items: list[tuple[int, str]], act: Callable[[str], None], what: str) -> list[int]:
    """`act` on each Twilio resource; the ids of those done, or already gone (Twilio's 404, or a
    call no longer in progress). A failure is logged and left for the next round."""
    done = []
    for row_id, sid in items:
        try:
            act(sid)
        except TwilioRestException as exc:
            if exc.status != 404 and exc.code not in CALLER_GONE_CODES:
                log.warning("could not %s %s: %s %s", what, sid, exc.status, exc.code)
                continue
        except Exception as exc:
            log.warning("could not %s %s: %s", what, sid, exc)
            continue
        done.append(row_id)
    return done


def _undo(redirect: PendingRedirect, now: datetime, reason: str, gone: bool) -> None:
    try:
        if redirect.group_key and getattr(redirect, "user_id", None) is not None:
            offer_service.leg_failed(redirect.group_key, redirect.user_id, now, reason)
        elif redirect.group_key:
            offer_service.cancel_group(redirect.group_key, now, reason, caller_gone=gone)
        elif redirect.transfer_id is not None:
            transfers.redirect_failed(redirect.transfer_id, now, reason)
    except Exception:
        # The offer's deadline will reclaim it; do not let one row start a crash loop.
        log.exception("could not undo the failed redirect of %s", redirect.call_sid)


def next_deadline(todo: agenda.Agenda, *known: datetime | None) -> datetime | None:
    """The earliest of the agenda's stored deadlines, a callback's retry and the `known` instants."""
    candidates = [*todo.deadlines(), agenda.next_callback_retry(todo), *known]
    present = [c for c in candidates if c is not None]
    return min(present) if present else None


class _Listener:
    """LISTEN koe_wake on its own connection and turn each NOTIFY into the in-process wake event."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        self.url = url
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="koe-listen", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {dispatch.WAKE_CHANNEL}")
                    while not self.stop.is_set():
                        for _notice in conn.notifies(timeout=1.0):
                            dispatch.wake_event.set()
            except Exception:
                log.warning("LISTEN connection lost; retrying", exc_info=True)
                self.stop.wait(2.0)


def _listen_url() -> str | None:
    if db.engine is None or db.dialect != "postgresql":
        return None
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


ROUND_JOB = "koe-round"
SWEEP_JOB = "koe-sweep"
LEAKED_QUEUES_JOB = "koe-leaked-queues"
LEAKED_QUEUES_EVERY = timedelta(hours=1)


@dataclass
class _Loop:
    """What the scheduled jobs share: the app, when to stop, and how many rounds ran."""

    app: Flask
    scheduler: BaseScheduler
    stop: threading.Event
    max_rounds: int | None
    rounds: int = 0


def run_forever(
    app: Flask,
    *,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    stop: threading.Event | None = None,
    install_signals: bool = True,
    max_rounds: int | None = None,
) -> None:
    """The worker: APScheduler runs a round at the next stored deadline, on `dispatch.wake()`, and
    every `interval` s as the sweep that repairs a missed wake-up. One job thread, so rounds never
    overlap; the scheduler lives in this process only (two processes cannot share its job store)."""
    stop = stop or threading.Event()
    if install_signals and threading.current_thread() is threading.main_thread():

        def _finish(_signum: int, _frame: Any) -> None:
            log.info("worker: signal received, finishing the current round")
            stop.set()
            dispatch.wake_event.set()

        signal.signal(signal.SIGTERM, _finish)
        signal.signal(signal.SIGINT, _finish)
    with app.app_context():
        url = _listen_url()
    if url:
        _Listener(url, stop).start()
    # Each round re-places its job (INFO lines), and a sweep that meets a long round is skipped
    # (a WARNING): both are the design; our own log lines say what a round did.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        # Housekeeping that may take a while (paging through Twilio) has a thread of its own, so
        # it never delays a round.
        executors={"default": ThreadPoolExecutor(max_workers=1), "housekeeping": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    loop = _Loop(app, scheduler, stop, max_rounds)
    scheduler.add_job(_round, "interval", seconds=interval, args=[loop], id=SWEEP_JOB)
    scheduler.add_job(
        _delete_leaked_queues,
        "interval",
        seconds=LEAKED_QUEUES_EVERY.total_seconds(),
        next_run_time=datetime.now(UTC) + timedelta(minutes=1),
        args=[loop],
        id=LEAKED_QUEUES_JOB,
        executor="housekeeping",
    )
    scheduler.start()
    log.info("worker started (sweep every %.1fs)", interval)
    try:
        _wake_now(loop)
        while not stop.is_set():
            if dispatch.wake_event.wait(interval) and not stop.is_set():
                dispatch.wake_event.clear()
                _wake_now(loop)
    finally:
        stop.set()  # ends the LISTEN thread too
        scheduler.shutdown(wait=True)  # lets a running round finish
    log.info("worker stopped")


def _delete_leaked_queues(loop: _Loop) -> None:
    if loop.stop.is_set():
        return
    with loop.app.app_context():
        try:
            delete_leaked_queues(get_clock().now())
        except Exception:  # a job that raises is only logged by APScheduler, at ERROR, which we mute
            log.exception("the sweep of leaked Twilio queues failed")


def _wake_now(loop: _Loop) -> None:
    _schedule_round(loop, datetime.now(UTC))


def _schedule_round(loop: _Loop, at: datetime) -> None:
    """(Re)place the one round job; an earlier wake-up replaces a later deadline and vice versa."""
    if loop.stop.is_set():
        return
    loop.scheduler.add_job(_round, "date", run_date=at, args=[loop], id=ROUND_JOB, replace_existing=True)


def _round(loop: _Loop) -> None:
    """One scheduled round, then the round job moved to the next stored deadline."""
    if loop.stop.is_set():
        return
    with loop.app.app_context():
        now = get_clock().now()
        try:
            upcoming = run_pending(now)
        except Exception:
            log.exception("worker round failed; the sweep tries again")
            upcoming = None
    loop.rounds += 1
    if loop.max_rounds is not None and loop.rounds >= loop.max_rounds:
        loop.stop.set()
        dispatch.wake_event.set()
        return
    if upcoming is not None:
        # The app's clock may be a test's; the scheduler keeps real time: schedule by the delay.
        delay = max(0.05, (upcoming - now).total_seconds())
        _schedule_round(loop, datetime.now(UTC) + timedelta(seconds=delay))


def start_in_thread(
    app: Flask, interval: float = DEFAULT_INTERVAL_SECONDS
) -> tuple[threading.Thread, threading.Event]:
    """The worker in a background thread of the development server (`flask serve`)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever,
        args=(app,),
        kwargs={"interval": interval, "stop": stop, "install_signals": False},
        name="koe-worker",
        daemon=True,
    )
    thread.start()
    return thread, stop
