"""A day of traffic through the whole product in virtual time, and the figures a manager reads after it.

`run(scenario)` creates a fresh database (a temporary SQLite file unless told otherwise), migrates
it, imports a small organisation through the configuration import (one queue, one number, K
operators on the Pro plan with browser identities), logs the operators in, and binds an emulator to
the app in virtual time as the end-to-end tests do: webhooks in-process through WSGI, the app's
`ManualClock` moved by the emulator's scheduler, the product's unchanged REST client answered
in-process, and the worker's `run_pending` as the tick. Then callers arrive (Poisson, flat or a
sinusoidal day, by thinning), wait with exponential patience and talk for an exponential time; each
operator's browser answers after a short random delay.

The figures come from the app's own books (Call rows and their events), not from the emulator's
notes: every call the product saw is answered, abandoned, overflowed or "other".

The worker tick models `worker.run_forever`: a round runs when a webhook woke the dispatcher
(`dispatch.wake()`), when the next stored deadline comes, and otherwise at most `worker_interval`
seconds after anything touched the app. (The end-to-end tests run a round after every event, which
is the same with an interval of 0, and several times slower.)
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event, select

from ..clock import ManualClock
from ..domain.estimates import MIN_HANDLING_SAMPLES, AsteriskHoldtime
from ..extensions import db
from . import metrics
from .emulator import Emulator
from .http_client import EmulatorHttpClient
from .parties import CallerScript, ClientDevice, RingOutcome
from .transport import WsgiTransport

PROFILES = ("flat", "sinusoidal")
STRATEGIES = ("fair", "longest_idle", "round_robin", "parallel", "ring_all")
SIM_NUMBER = "+46850000000"
SIM_ORG = "simulering"
SIM_QUEUE = "vaxeln"
# A Wednesday, 07:00 in Stockholm (06:00 UTC): the day starts in daylight and has no holiday.
DEFAULT_START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
# The product caches a queue's handling history this long (calls.QUEUE_FACTS_TTL); the estimate of a
# caller who arrives before the history holds MIN_HANDLING_SAMPLES calls (plus this) is not measured.
HISTORY_WARM_UP = timedelta(seconds=30)


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Exactly one of `calls` and `hours` bounds the day."""

    calls: int | None = 1000
    hours: float | None = None
    rate_per_hour: float = 120.0
    profile: str = "flat"
    amplitude: float = 0.5  # sinusoidal: rate(t) = mean * (1 + amplitude * sin(2 pi t / period))
    handling_mean: float = 180.0  # seconds of talk, exponential
    patience_mean: float = 300.0  # seconds before an unanswered caller hangs up, exponential
    operators: int = 4
    strategy: str = "fair"
    service_level_seconds: float = 20.0
    wrap_up_seconds: int = 0
    ring_timeout_seconds: int = 20
    answer_after: tuple[float, float] = (1.0, 4.0)  # each ring is answered after U(a, b) seconds
    seed: int = 1
    worker_interval: float = 2.0
    worker_round_seconds: float = 0.1
    start: datetime = DEFAULT_START

    def __post_init__(self) -> None:
        if (self.calls is None) == (self.hours is None):
            raise ValueError("give either a number of calls or a number of hours")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.rate_per_hour <= 0 or self.operators < 1:
            raise ValueError("the rate and the number of operators must be positive")
        if not 0 <= self.amplitude <= 1:
            raise ValueError("the amplitude must be between 0 and 1")
        if self.handling_mean <= 0 or self.patience_mean <= 0:
            raise ValueError("handling and patience means must be positive")

    @property
    def period_seconds(self) -> float:
        """The sinusoid's period: the whole day (for `calls`, its expected length)."""
        if self.hours is not None:
            return self.hours * 3600
        assert self.calls is not None
        return self.calls / self.rate_per_hour * 3600


# --- arrivals -----------------------------------------------------------------------------------


def rate_at(scenario: Scenario, t: float) -> float:
    """Arrivals per second `t` seconds into the day."""
    base = scenario.rate_per_hour / 3600
    if scenario.profile == "flat":
        return base
    return base * (1 + scenario.amplitude * math.sin(2 * math.pi * t / scenario.period_seconds))


def arrival_offsets(scenario: Scenario, rng: random.Random) -> list[float]:
    """Seconds from the start of the day of each arrival: a Poisson process with rate `rate_at`,
    time-varying by thinning (Lewis and Shedler): candidates at the peak rate, each kept with
    probability rate(t) / peak."""
    peak = scenario.rate_per_hour / 3600 * (1 + (scenario.amplitude if scenario.profile != "flat" else 0))
    limit = scenario.hours * 3600 if scenario.hours is not None else math.inf
    wanted = scenario.calls if scenario.calls is not None else math.inf
    offsets: list[float] = []
    t = 0.0
    while len(offsets) < wanted:
        t += rng.expovariate(peak)
        if t >= limit:
            break
        if scenario.profile == "flat" or rng.random() * peak <= rate_at(scenario, t):
            offsets.append(t)
    return offsets


# --- the organisation ---------------------------------------------------------------------------


def operator_identity(index: int) -> str:
    return f"sim_op_{index:02d}"


def organisation_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario's organisation as a configuration file (docs/config-schema.md)."""
    users = [
        {
            "email": f"op{i:02d}@simulering.example",
            "name": f"Operatör {i}",
            "role": "operator",
            "plan": "pro",
            "client_identity": operator_identity(i),
        }
        for i in range(1, scenario.operators + 1)
    ]
    queue: dict[str, Any] = {
        "slug": SIM_QUEUE,
        "name": "Växeln",
        "language": "sv",
        "schedule": "Dygnet runt",
        "strategy": scenario.strategy,
        "ring_timeout_seconds": scenario.ring_timeout_seconds,
        "wrap_up_seconds": scenario.wrap_up_seconds,
        "max_missed_offers": 0,
        "announce_position": True,
        "announce_expected_wait": True,
        "no_operator_action": "queue",
        "memberships": [{"user": u["email"], "may_see": True, "may_log_in": True} for u in users],
    }
    if scenario.strategy == "parallel":
        queue["parallel_count"] = 2
    return {
        "version": 1,
        "organisation": {
            "name": "Simuleringen AB",
            "slug": SIM_ORG,
            "timezone": "Europe/Stockholm",
            "locale": "sv",
            "holiday_country": "SE",
        },
        # Open round the clock, as two rules (before and after noon) rather than none: the opening
        # hours' status then finds its next change within half a day instead of scanning its whole
        # 400-day horizon, which the worker asks for twice a round. A rule cannot end at midnight in
        # a configuration file, so the second ends at 23:59:59 (a one-second gap each night).
        "schedules": [
            {
                "name": "Dygnet runt",
                "holiday_categories": [],
                "rules": [
                    {"effect": "open", "rrule": "FREQ=DAILY", "starts": "00:00", "ends": "12:00"},
                    {"effect": "open", "rrule": "FREQ=DAILY", "starts": "12:00", "ends": "23:59:59"},
                ],
            }
        ],
        "users": users,
        "queues": [queue],
        "phone_numbers": [{"number": SIM_NUMBER, "label": "Simulering", "queue": SIM_QUEUE}],
    }


# --- the operators' browsers --------------------------------------------------------------------


@dataclass(frozen=True)
class JitteredDevice(ClientDevice):
    """A browser that answers every ring after U(low, high) seconds, drawn per ring."""

    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    low: float = 1.0
    high: float = 4.0

    def ring(self, on_a_call: bool, unregistered_after_s: float = 0.5) -> RingOutcome:
        outcome = super().ring(on_a_call, unregistered_after_s)
        if outcome.result != "answer":
            return outcome
        return RingOutcome("answer", self.rng.uniform(self.low, self.high))


# --- the worker in virtual time -----------------------------------------------------------------


class WorkerTick:
    """`worker.run_pending` as the emulator's app tick, run when the real worker loop would run it.

    The loop (`worker.run_forever`) runs a round when a webhook wakes it, when the next stored
    deadline comes, and otherwise every `interval` seconds; a round takes a little while, and what
    wakes it meanwhile is seen by the next round. So here a round runs on a wake or a deadline, at
    most `interval` seconds after anything else touched the app, and never sooner than
    `round_seconds` after the previous one (wakes in between are taken together).
    """

    def __init__(self, app: Flask, interval: float = 2.0, round_seconds: float = 0.0) -> None:
        self.app = app
        self.interval = timedelta(seconds=max(0.0, interval))
        self.round = timedelta(seconds=max(0.0, round_seconds))
        self.last_run: datetime | None = None
        self.deadline: datetime | None = None
        self.rounds = 0
        self.reasons: dict[str, int] = {}

    def __call__(self, now: datetime) -> datetime | None:
        from ..services import dispatch
        from ..worker import run_pending

        woken = dispatch.wake_event.is_set()
        due = self.deadline is not None and now >= self.deadline
        if self.last_run is not None:
            busy_until = self.last_run + self.round
            if now < busy_until:
                return busy_until if (woken or due) else self._next(now)
            if not (woken or due or now - self.last_run >= self.interval):
                return self._next(now)
        reason = "woken" if woken else "deadline" if due else "interval"
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        dispatch.wake_event.clear()
        with self.app.app_context():
            self.deadline = run_pending(now)
        self.last_run = now
        self.rounds += 1
        return self.deadline

    def _next(self, now: datetime) -> datetime:
        """Something touched the app without waking the worker: its next round sees it."""
        assert self.last_run is not None
        later = max(self.last_run + self.interval, self.last_run + self.round)
        return min(later, self.deadline) if self.deadline is not None else later


def bind_emulator(
    app: Flask, clock: ManualClock, seed: int = 0, tick: Callable[[datetime], datetime | None] | None = None
) -> Emulator:
    """The emulator bound to `app` in virtual time, as tests/e2e/conftest.py binds it."""
    emulator = Emulator(
        clock,
        app.config["TWILIO_ACCOUNT_SID"],
        app.config["TWILIO_AUTH_TOKEN"],
        WsgiTransport(app),
        seed=seed,
        app_tick=tick if tick is not None else WorkerTick(app, 0.0),
        api_base_url=app.config["TWILIO_API_BASE"],
    )
    app.extensions["twilio_http_client"] = EmulatorHttpClient(emulator)
    app.extensions["koe_emulator"] = emulator
    return emulator


def route_number(app: Flask, emulator: Emulator, number: str) -> None:
    """Calls to `number` reach the app's voice webhook, with every status callback."""
    base = app.config["PUBLIC_BASE_URL"]
    emulator.add_number(
        number,
        f"{base}/twilio/voice",
        status_callback=f"{base}/twilio/status",
        # Twilio sends a number's "call status changes" URL only `completed` (twilio.md §4), and
        # the README's set-up configures nothing more.
        status_callback_events=("completed",),
    )


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: Scenario
    placed: int
    books: metrics.Books
    wait_mean: float | None
    wait_p90: float | None
    abandoned_wait_mean: float | None
    service_level: float | None
    occupancy: float | None
    talk_seconds: float
    logged_in_seconds: float
    error_ours: float | None
    error_asterisk: float | None
    bias_ours: float | None
    bias_asterisk: float | None
    estimates_measured: int
    virtual_seconds: float
    run_seconds: float
    webhook_requests: int
    worker_rounds: int
    emulator_errors: int

    def to_json(self) -> dict[str, Any]:
        scenario = asdict(self.scenario)
        scenario["start"] = self.scenario.start.isoformat()
        return {
            "scenario": scenario,
            "calls": {
                "placed": self.placed,
                "offered": self.books.offered,
                "answered": self.books.answered,
                "abandoned": self.books.abandoned,
                "overflowed": self.books.overflowed,
                "other": self.books.other,
            },
            "wait_s": {
                "mean": _round(self.wait_mean),
                "p90": _round(self.wait_p90),
                "abandoned_mean": _round(self.abandoned_wait_mean),
            },
            "service_level": _round(self.service_level, 4),
            "service_level_seconds": self.scenario.service_level_seconds,
            "occupancy": _round(self.occupancy, 4),
            "expected_wait_error": {
                "ours": _round(self.error_ours, 4),
                "asterisk": _round(self.error_asterisk, 4),
                "bias_ours_s": _round(self.bias_ours),
                "bias_asterisk_s": _round(self.bias_asterisk),
                "callers": self.estimates_measured,
            },
            "virtual_hours": _round(self.virtual_seconds / 3600, 3),
            "run_seconds": _round(self.run_seconds, 2),
            "webhook_requests": self.webhook_requests,
            "worker_rounds": self.worker_rounds,
            "emulator_errors": self.emulator_errors,
        }

    def lines(self) -> list[str]:
        b = self.books
        sl = self.scenario.service_level_seconds

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{100 * value:.1f} %"

        def sec(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} s"

        def share(count: int) -> str:
            return f"{count:>7}  ({pct(count / b.offered) if b.offered else '-'})"

        out = [
            f"Offered     {b.offered:>7}" + ("" if b.offered == self.placed else f"  (placed {self.placed})"),
            f"Answered    {share(b.answered)}",
            f"Abandoned   {share(b.abandoned)}",
            f"Overflowed  {share(b.overflowed)}",
        ]
        if b.other:
            out.append(f"Other       {share(b.other)}")
        out += [
            f"Service level ({sl:g} s): {pct(self.service_level)}",
            f"Wait (answered): mean {sec(self.wait_mean)}, 90th percentile {sec(self.wait_p90)}",
            f"Occupancy: {pct(self.occupancy)} (talk {self.talk_seconds / 3600:.1f} h"
            f" / logged in {self.logged_in_seconds / 3600:.1f} h)",
            f"Expected-wait error (RASE, {self.estimates_measured} answered callers):"
            f" ours {_fmt(self.error_ours)}, Asterisk {_fmt(self.error_asterisk)}",
            f"Virtual time {self.virtual_seconds / 3600:.2f} h, {self.webhook_requests} webhook requests,"
            f" {self.worker_rounds} worker rounds; run time {self.run_seconds:.1f} s",
        ]
        if self.emulator_errors:
            out.append(f"Emulator errors (Twilio debugger): {self.emulator_errors}")
        return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def sim_config(database_url: str, clock: ManualClock, folder: Path) -> dict[str, Any]:
    return {
        "SECRET_KEY": "simulation-only",
        "DATABASE_URL": database_url,
        "CLOCK": clock,
        "AUDIO_DIR": str(folder / "audio"),
        "PUBLIC_BASE_URL": "http://koe.simulation",
        "TWILIO_EMULATOR": True,
        "TWILIO_API_BASE": "http://koe.simulation/emulator",
        "RUN_WORKER_IN_PROCESS": False,
        # One process in virtual time: what a fetch heard is written before the next step reads it.
        "WAIT_WRITE_BEHIND": False,
        "SERVER_NAME": None,
        "LOG_LEVEL": "ERROR",
    }


@contextmanager
def simulation_app(database_url: str | None = None) -> Iterator[tuple[Flask, ManualClock]]:
    """A fresh app on its own database (a temporary SQLite file by default), migrated."""
    from .. import create_app, migrations

    folder = Path(tempfile.mkdtemp(prefix="koe-sim-"))
    url = database_url or f"sqlite:///{folder / 'simulation.sqlite3'}"
    clock = ManualClock(DEFAULT_START)
    app = create_app(sim_config(url, clock, folder))
    if url.startswith("sqlite") and db.writer_engine is not None:
        # A throw-away database: no fsync on every commit.
        for engine in {db.engine, db.writer_engine}:
            event.listen(engine, "connect", _no_sync)
    try:
        with app.app_context():
            migrations.upgrade("head")
        yield app, clock
    finally:
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def prepare(app: Flask, scenario: Scenario, now: datetime) -> tuple[int, int, list[tuple[int, str]]]:
    """Import the scenario's organisation and log its operators in: (org id, queue id, operators)."""
    from ..models import Organisation, Queue, User
    from ..services import config_io, operators

    with app.app_context():
        report = config_io.import_config(organisation_document(scenario), dry_run=False)
        if not report.ok:
            raise RuntimeError("the scenario's organisation was refused: " + "; ".join(report.errors))
        with db.transaction() as session:
            org_id = session.scalars(select(Organisation.id).where(Organisation.slug == SIM_ORG)).one()
            queue_id = session.scalars(
                select(Queue.id).where(Queue.organisation_id == org_id, Queue.slug == SIM_QUEUE)
            ).one()
            people = session.execute(
                select(User.id, User.client_identity).where(User.organisation_id == org_id).order_by(User.id)
            ).all()
        for user_id, _identity in people:
            operators.log_in(user_id, [queue_id], now)
    return org_id, queue_id, [(uid, identity or "") for uid, identity in people]


def run(scenario: Scenario, database_url: str | None = None) -> Result:
    """Simulate the scenario from an empty database; the figures from the app's books."""
    started = time.perf_counter()
    with quiet_logs(), simulation_app(database_url) as (app, clock):
        return run_in(app, clock, scenario, started)


@contextmanager
def quiet_logs(level: int = logging.ERROR) -> Iterator[None]:
    """Thousands of calls would log a line per webhook: only errors while the day runs."""
    loggers = [logging.getLogger(name) for name in ("koe", "alembic")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, was in zip(loggers, previous, strict=True):
            logger.setLevel(was)


def run_in(app: Flask, clock: ManualClock, scenario: Scenario, started: float | None = None) -> Result:
    """Simulate on an app whose database is migrated and holds no other organisation's traffic."""
    started = time.perf_counter() if started is None else started
    clock.set(scenario.start)
    org_id, queue_id, people = prepare(app, scenario, scenario.start)
    tick = WorkerTick(app, scenario.worker_interval, scenario.worker_round_seconds)
    emulator = bind_emulator(app, clock, seed=scenario.seed, tick=tick)
    try:
        route_number(app, emulator, SIM_NUMBER)
        device_rng = random.Random(f"{scenario.seed}:devices")
        low, high = scenario.answer_after
        for _user_id, identity in people:
            emulator.register_client(identity, JitteredDevice(rng=device_rng, low=low, high=high))

        arrivals = arrival_offsets(scenario, random.Random(f"{scenario.seed}:arrivals"))
        people_rng = random.Random(f"{scenario.seed}:callers")
        for index, offset in enumerate(arrivals):
            script = CallerScript(
                patience=people_rng.expovariate(1 / scenario.patience_mean),
                talk_for=people_rng.expovariate(1 / scenario.handling_mean),
            )
            caller = f"+4670{index:07d}"
            emulator.scheduler.call_at(
                scenario.start + timedelta(seconds=offset),
                lambda c=caller, s=script: emulator.place_call(c, SIM_NUMBER, s),  # type: ignore[misc]
            )
        horizon = (arrivals[-1] if arrivals else 0) + 6 * 3600
        emulator.run_until_idle(max_seconds=horizon)
        ended = emulator.now()
        with app.app_context():
            _log_everyone_out(people, ended)
            result = figures(org_id, queue_id, scenario, ended)
    finally:
        app.extensions.pop("twilio_http_client", None)
        app.extensions.pop("koe_emulator", None)
    result.placed = len(arrivals)
    result.virtual_seconds = (ended - scenario.start).total_seconds()
    result.run_seconds = time.perf_counter() - started
    result.webhook_requests = emulator.requests_made
    result.worker_rounds = tick.rounds
    result.emulator_errors = len(emulator.errors)
    return result


def _log_everyone_out(people: list[tuple[int, str]], now: datetime) -> None:
    from ..services import operators

    for user_id, _identity in people:
        with suppress(operators.OperatorError):
            operators.log_out(user_id, None, now, reason="simulation_over")


# --- the figures, from the books ----------------------------------------------------------------


def load_records(org_id: int, queue_id: int) -> list[metrics.CallRecord]:
    from ..models import Call

    with db.transaction() as session:
        rows = session.execute(
            select(
                Call.state,
                Call.arrived_at,
                Call.entered_queue_at,
                Call.answered_at,
                Call.ended_at,
                Call.first_estimate_seconds,
            )
            .where(Call.organisation_id == org_id)
            .order_by(Call.id)
        ).all()
    return [metrics.CallRecord(*row) for row in rows]


def logged_in_intervals(org_id: int, until: datetime) -> list[tuple[datetime, datetime]]:
    """Per operator and queue, from each `logged_in` event to its `logged_out` (or `until`)."""
    from ..models import OperatorEvent

    with db.transaction() as session:
        rows = session.execute(
            select(OperatorEvent.user_id, OperatorEvent.queue_id, OperatorEvent.kind, OperatorEvent.at)
            .where(
                OperatorEvent.organisation_id == org_id,
                OperatorEvent.kind.in_(("logged_in", "logged_out")),
            )
            .order_by(OperatorEvent.at, OperatorEvent.id)
        ).all()
    # An operator logged in to one queue counts once, however many queues they are in.
    opened: dict[int, datetime] = {}
    queues: dict[int, set[int | None]] = {}
    intervals: list[tuple[datetime, datetime]] = []
    for user_id, queue_id, kind, at in rows:
        present = queues.setdefault(user_id, set())
        if kind == "logged_in":
            if not present:
                opened[user_id] = at
            present.add(queue_id)
        else:
            present.discard(queue_id)
            if not present and user_id in opened:
                intervals.append((opened.pop(user_id), at))
    intervals.extend((start, until) for start in opened.values())
    return intervals


def estimate_pairs(
    records: list[metrics.CallRecord],
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(ours, Asterisk's) (announced, actual) pairs over answered callers who heard our estimate.

    A caller's first estimate is said at their first waitUrl fetch, right after they entered the
    queue; the actual wait is from entering to being answered. Asterisk's estimator is replayed
    offline over the same books: it learns from every answer (the wait) and counts completed and
    abandoned calls, and at each measured caller's queue entry says |holdtime - elapsed| (elapsed 0).
    Callers who entered before the product had MIN_HANDLING_SAMPLES ended calls (its estimate needs
    them) are left out, for both.
    """
    timeline: list[tuple[datetime, int, str, float]] = []
    ends = sorted(r.ended_at for r in records if r.answered_at is not None and r.ended_at is not None)
    warm = ends[MIN_HANDLING_SAMPLES - 1] + HISTORY_WARM_UP if len(ends) >= MIN_HANDLING_SAMPLES else None
    for r in records:
        if r.answered_at is not None:
            wait = int(r.answered_at.timestamp()) - int(r.queue_start.timestamp())
            timeline.append((r.answered_at, 1, "answer", float(wait)))
            if r.ended_at is not None:
                timeline.append((r.ended_at, 2, "complete", 0.0))
        elif r.state == "abandoned" and r.ended_at is not None:
            timeline.append((r.ended_at, 2, "abandon", 0.0))
    measured = sorted(
        (r for r in records if r.answered_at is not None and r.first_estimate_seconds is not None),
        key=lambda r: r.queue_start,
    )
    measured = [r for r in measured if r.queue_start >= warm] if warm is not None else []
    for r in measured:
        timeline.append((r.queue_start, 0, "ask", 0.0))
    timeline.sort(key=lambda item: (item[0], item[1]))
    asterisk = AsteriskHoldtime()
    said: list[int] = []
    for _at, _order, kind, value in timeline:
        if kind == "answer":
            asterisk.answered(value)
        elif kind == "complete":
            asterisk.completed()
        elif kind == "abandon":
            asterisk.abandoned()
        else:
            said.append(asterisk.estimate_seconds(0))
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for r, asterisk_said in zip(measured, said, strict=True):
        actual = r.wait_seconds or 0.0
        ours.append((float(r.first_estimate_seconds or 0), actual))
        theirs.append((float(asterisk_said), actual))
    return ours, theirs


def figures(org_id: int, queue_id: int, scenario: Scenario, ended: datetime) -> Result:
    records = load_records(org_id, queue_id)
    books = metrics.tally(records)
    answered_waits = [r.wait_seconds or 0.0 for r in records if r.outcome == metrics.ANSWERED]
    abandoned_waits = [r.wait_seconds or 0.0 for r in records if r.outcome == metrics.ABANDONED]
    talk = sum(r.talk_seconds for r in records)
    logged_in = metrics.interval_seconds(logged_in_intervals(org_id, ended))
    ours, theirs = estimate_pairs(records)
    return Result(
        scenario=scenario,
        placed=0,
        books=books,
        wait_mean=metrics.mean(answered_waits),
        wait_p90=metrics.percentile(answered_waits, 0.9),
        abandoned_wait_mean=metrics.mean(abandoned_waits),
        service_level=metrics.service_level(answered_waits, books.offered, scenario.service_level_seconds),
        occupancy=metrics.occupancy(talk, logged_in),
        talk_seconds=talk,
        logged_in_seconds=logged_in,
        error_ours=metrics.rase(ours),
        error_asterisk=metrics.rase(theirs),
        bias_ours=metrics.mean_error(ours),
        bias_asterisk=metrics.mean_error(theirs),
        estimates_measured=len(ours),
        virtual_seconds=0.0,
        run_seconds=0.0,
        webhook_requests=0,
        worker_rounds=0,
        emulator_errors=0,
    )
