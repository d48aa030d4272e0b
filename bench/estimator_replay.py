"""Replay expected-wait estimators on simulated traffic in seconds, without the product.

`flask --app app simulate` judges the estimator through the whole product (webhooks, worker,
emulator) and costs minutes per thousand calls. This harness is a plain discrete-event M(t)/G/c+G
queue with the same traffic as `queue_app/sim/simulate.py`: the same arrival offsets (Poisson, flat
or sinusoidal by thinning, from `arrival_offsets`), the same callers' patience and talk time drawn
in the same order from the same seeded stream, rings answered after U(1, 4) s, the welcome said
before the caller's first waitUrl fetch. It asks each candidate estimator at the moment the product
would (the first fetch, with the caller's position, the serving and free operators, and the queue
history cached for 30 s as `calls.QueueFacts` is), and scores it with the simulation's own metric
(`simulate.estimate_pairs`, RASE over answered callers) beside Asterisk's replayed hold time.

    .venv/bin/python -m bench.estimator_replay                       # default grid, a table
    .venv/bin/python -m bench.estimator_replay --seeds 1 2 3 --profiles flat sinusoidal --json

What it leaves out (so its figures are close to simulate's, not equal): the worker's rounds are
instant, webhooks take no time, and the operator's browser is never slow to register.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from queue_app.domain import estimates
from queue_app.domain.estimates import HandlingHistory, PastCall
from queue_app.domain.prompts_text import welcome
from queue_app.sim import metrics
from queue_app.sim.simulate import Scenario, arrival_offsets, estimate_pairs

SAY_SECONDS_PER_CHAR = 0.065  # emulator.Options.say_seconds_per_char
WELCOME_SECONDS = len(welcome("sv", "Simuleringen AB")) * SAY_SECONDS_PER_CHAR
FACTS_TTL = 30.0  # calls.QUEUE_FACTS_TTL
FIRST_HISTORY_CALLS = 50  # the first estimator's handling history: its last 50 answered calls

# --- candidates ---------------------------------------------------------------------------------

BuildHistory = Callable[[Sequence[PastCall], float], HandlingHistory]
Estimate = Callable[[int, int, int, HandlingHistory], float | None]


@dataclass(frozen=True)
class Candidate:
    name: str
    build: BuildHistory
    estimate: Estimate


def _old_history(past: Sequence[PastCall], wrap_up: float) -> HandlingHistory:
    """The first estimator's history: the last 50 answered calls' talk time, plus wrap-up."""
    talks = [p.ended_at - p.answered_at for p in past if p.answered_at is not None]
    return HandlingHistory.from_durations([t.total_seconds() for t in talks[-FIRST_HISTORY_CALLS:]], wrap_up)


def _plain(position: int, serving: int, free: int, history: HandlingHistory) -> float | None:
    """n * h / s, blind to abandonment and to the offer's own ring."""
    bare = replace(history, abandon_rate=0.0, offer_seconds=0.0)
    return estimates.queue_length_estimate(position, serving, bare, free_operators=free)


def _current(position: int, serving: int, free: int, history: HandlingHistory) -> float | None:
    return estimates.queue_length_estimate(position, serving, history, free_operators=free)


def _new_history(past: Sequence[PastCall], wrap_up: float) -> HandlingHistory:
    return HandlingHistory.from_calls(past, wrap_up)


def _variant(**kwargs: Any) -> BuildHistory:
    def build(past: Sequence[PastCall], wrap_up: float) -> HandlingHistory:
        return HandlingHistory.from_calls(past, wrap_up, **kwargs)

    return build


def _no_ring(position: int, serving: int, free: int, history: HandlingHistory) -> float | None:
    return _current(position, serving, free, replace(history, offer_seconds=0.0))


def _no_abandon(position: int, serving: int, free: int, history: HandlingHistory) -> float | None:
    return _current(position, serving, free, replace(history, abandon_rate=0.0))


def _formula(own_patience: bool, ring_in_cycle: bool) -> Estimate:
    """The domain's formula with one of its choices turned the other way, to weigh each choice."""

    def estimate(position: int, serving: int, free: int, history: HandlingHistory) -> float | None:
        if serving < 1 or history.mean_seconds is None or history.samples < estimates.MIN_HANDLING_SAMPLES:
            return None
        cycle = history.mean_seconds + (history.offer_seconds if ring_in_cycle else 0.0)
        rate, wait = serving / cycle, history.offer_seconds
        for j in range(max(0, position - free), 0, -1):
            wait += 1 / (rate + (j if own_patience else j - 1) * history.abandon_rate)
        return wait

    return estimate


CANDIDATES: dict[str, Candidate] = {
    "first (n*h/s, 50 talks)": Candidate("first", _old_history, _plain),
    "new": Candidate("new", _new_history, _current),
    # Each of the new estimator's choices turned off in turn, to show what it is worth.
    "new, no ring time": Candidate("new-ring", _new_history, _no_ring),
    "new, no abandonment": Candidate("new-abandon", _new_history, _no_abandon),
    "new, not own patience": Candidate("new-own", _new_history, _formula(False, True)),
    "new, ring not in cycle": Candidate("new-cycle", _new_history, _formula(True, False)),
    # The recent window: (answered calls for the handling time, departed calls for the rest).
    "new, window 25/100": Candidate("new-w25", _variant(handling_calls=25, departed_calls=100), _current),
    "new, window 50/200": Candidate("new-w50", _variant(handling_calls=50, departed_calls=200), _current),
    "new, window 200/400": Candidate("new-w200", _variant(handling_calls=200, departed_calls=400), _current),
}


# --- the queue ----------------------------------------------------------------------------------


@dataclass
class Caller:
    index: int
    arrived: float
    patience: float
    talk: float
    state: str = "waiting"  # waiting, offered, talking, done, abandoned
    answered: float | None = None
    ended: float | None = None
    operator: int | None = None
    estimates: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Operator:
    index: int
    state: str = "available"  # available, ringing, talking, wrap_up
    caller: Caller | None = None


class Replay:
    """One day of the scenario's traffic, the candidates asked at each caller's first fetch."""

    def __init__(self, scenario: Scenario, candidates: Sequence[Candidate]) -> None:
        self.scenario = scenario
        self.candidates = candidates
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.counter = itertools.count()
        self.operators = [Operator(i) for i in range(scenario.operators)]
        self.queue: list[Caller] = []  # waiting or offered, in queue order
        self.callers: list[Caller] = []
        self.departed: list[PastCall] = []
        self.cache: dict[str, tuple[float, HandlingHistory]] = {}
        self.ring_rng = random.Random(f"{scenario.seed}:devices")
        self.epoch = scenario.start

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.counter), action))

    def stamp(self, seconds: float) -> datetime:
        return self.epoch + timedelta(seconds=seconds)

    def run(self) -> list[Caller]:
        scenario = self.scenario
        people = random.Random(f"{scenario.seed}:callers")
        for index, offset in enumerate(arrival_offsets(scenario, random.Random(f"{scenario.seed}:arrivals"))):
            patience = people.expovariate(1 / scenario.patience_mean)
            talk = people.expovariate(1 / scenario.handling_mean)
            caller = Caller(index, offset, patience, talk)
            self.callers.append(caller)
            self.at(offset, lambda c=caller: self.arrive(c))  # type: ignore[misc]
        while self.events:
            self.now, _, action = heapq.heappop(self.events)
            action()
        return self.callers

    # caller events

    def arrive(self, caller: Caller) -> None:
        self.queue.append(caller)
        self.at(caller.arrived + caller.patience, lambda: self.give_up(caller))
        self.at(caller.arrived + WELCOME_SECONDS, lambda: self.first_fetch(caller))
        self.dispatch()

    def first_fetch(self, caller: Caller) -> None:
        if caller.state != "waiting":
            return  # offered during the welcome: redirected before the Enqueue, hears no estimate
        ahead = self.queue.index(caller)
        serving = len(self.operators)
        free = sum(1 for op in self.operators if op.state == "available")
        for candidate in self.candidates:
            history = self.history(candidate)
            caller.estimates[candidate.name] = candidate.estimate(ahead + 1, serving, free, history)

    def give_up(self, caller: Caller) -> None:
        if caller.state not in ("waiting", "offered"):
            return
        self.queue.remove(caller)
        if caller.state == "offered" and caller.operator is not None:
            self.operators[caller.operator].state = "available"
            self.operators[caller.operator].caller = None
        caller.state = "abandoned"
        caller.ended = self.now
        self.departed.append(PastCall(self.stamp(caller.arrived), None, self.stamp(self.now)))
        self.dispatch()

    # operators

    def dispatch(self) -> None:
        free = [op for op in self.operators if op.state == "available"]
        waiting = [c for c in self.queue if c.state == "waiting"]
        for op, caller in zip(free, waiting, strict=False):
            op.state, op.caller = "ringing", caller
            caller.state, caller.operator = "offered", op.index
            low, high = self.scenario.answer_after
            self.at(self.now + self.ring_rng.uniform(low, high), lambda o=op, c=caller: self.answer(o, c))  # type: ignore[misc]

    def answer(self, op: Operator, caller: Caller) -> None:
        if caller.state != "offered" or op.caller is not caller:
            return
        self.queue.remove(caller)
        caller.state, caller.answered = "talking", self.now
        op.state = "talking"
        self.at(self.now + caller.talk, lambda: self.hang_up(op, caller))

    def hang_up(self, op: Operator, caller: Caller) -> None:
        caller.state, caller.ended = "done", self.now
        op.state, op.caller = "available", None
        assert caller.answered is not None
        self.departed.append(
            PastCall(self.stamp(caller.arrived), self.stamp(caller.answered), self.stamp(self.now), op.index)
        )
        wrap = self.scenario.wrap_up_seconds
        if wrap:
            op.state = "wrap_up"
            self.at(self.now + wrap, lambda: self.wrapped(op))
        else:
            self.dispatch()

    def wrapped(self, op: Operator) -> None:
        op.state = "available"
        self.dispatch()

    def history(self, candidate: Candidate) -> HandlingHistory:
        cached = self.cache.get(candidate.name)
        if cached is not None and self.now - cached[0] < FACTS_TTL:
            return cached[1]
        recent = self.departed[-400:]  # as many as any candidate's window reads
        built = candidate.build(recent, float(self.scenario.wrap_up_seconds))
        self.cache[candidate.name] = (self.now, built)
        return built


# --- scoring ------------------------------------------------------------------------------------


def records(replay: Replay, candidate: Candidate) -> list[metrics.CallRecord]:
    out = []
    for c in replay.callers:
        said = c.estimates.get(candidate.name)
        out.append(
            metrics.CallRecord(
                state="completed" if c.answered is not None else "abandoned",
                arrived_at=replay.stamp(c.arrived),
                entered_queue_at=replay.stamp(c.arrived),
                answered_at=replay.stamp(c.answered) if c.answered is not None else None,
                ended_at=replay.stamp(c.ended) if c.ended is not None else None,
                first_estimate_seconds=round(said) if said is not None else None,
            )
        )
    return out


@dataclass
class Score:
    candidate: str
    ours: float | None
    asterisk: float | None
    bias: float | None
    measured: int
    mean_wait: float | None


def score(replay: Replay, candidate: Candidate) -> Score:
    recs = records(replay, candidate)
    ours, theirs = estimate_pairs(recs)
    waits = [r.wait_seconds or 0.0 for r in recs if r.answered_at is not None]
    return Score(
        candidate.name,
        metrics.rase(ours),
        metrics.rase(theirs),
        metrics.mean_error(ours),
        len(ours),
        metrics.mean(waits),
    )


SHAPES: dict[str, dict[str, Any]] = {
    # The two days: 12 operators, 1,200/h, 33 s talk, 120 s patience.
    "flat": {"profile": "flat"},
    "sinusoidal": {"profile": "sinusoidal", "amplitude": 0.5},
    # Harder: a stronger swing, and a busier steady day.
    "sinusoidal-0.8": {"profile": "sinusoidal", "amplitude": 0.8},
    "flat-busy": {"profile": "flat", "rate_per_hour": 1350.0},
    # The README's steady day (13 operators, patience left at simulate's 300 s); use --calls 10000.
    "flat-readme": {"profile": "flat", "operators": 13, "patience_mean": 300.0},
    "sinusoidal-wrap": {
        "profile": "sinusoidal",
        "amplitude": 0.5,
        "wrap_up_seconds": 10,
        "rate_per_hour": 1000.0,
    },
}
BASE = {
    "calls": 1000,
    "operators": 12,
    "rate_per_hour": 1200.0,
    "handling_mean": 33.0,
    "patience_mean": 120.0,
    "strategy": "fair",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--profiles", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    chosen = [CANDIDATES[name] for name in args.candidates]
    table: dict[str, dict[str, list[Score]]] = {}
    for shape in args.profiles:
        for seed in args.seeds:
            scenario = Scenario(**(BASE | SHAPES[shape] | {"calls": args.calls, "seed": seed}))
            replay = Replay(scenario, chosen)
            replay.run()
            for candidate in chosen:
                table.setdefault(shape, {}).setdefault(candidate.name, []).append(score(replay, candidate))
    if args.json:
        out = {
            shape: {name: [s.__dict__ for s in scores] for name, scores in by.items()}
            for shape, by in table.items()
        }
        print(json.dumps(out, indent=2))
        return
    for shape, by in table.items():
        print(f"\n{shape}: RASE mean over seeds {args.seeds} ({args.calls} calls)")
        asterisk = statistics.mean(s.asterisk or 0 for s in next(iter(by.values())))
        waits = statistics.mean(s.mean_wait or 0 for s in next(iter(by.values())))
        print(f"  {'Asterisk':28} {asterisk:.3f}     (mean answered wait {waits:.1f} s)")
        for name, scores in by.items():
            ours = [s.ours or 0 for s in scores]
            bias = statistics.mean(s.bias or 0 for s in scores)
            wins = sum(1 for s in scores if (s.ours or 0) < (s.asterisk or 0))
            label = next(k for k, c in CANDIDATES.items() if c.name == name)
            print(
                f"  {label:28} {statistics.mean(ours):.3f}  per seed {' '.join(f'{x:.3f}' for x in ours)}"
                f"  bias {bias:+.1f} s  beats Asterisk {wins}/{len(scores)}"
            )


if __name__ == "__main__":
    main()
