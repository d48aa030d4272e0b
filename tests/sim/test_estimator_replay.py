"""The estimator replay harness (bench/estimator_replay.py): it replays simulate's traffic, and on
it the estimator in the product beats both the first one and Asterisk's, where the load varies too."""

from __future__ import annotations

import random
import statistics

from bench.estimator_replay import BASE, CANDIDATES, SHAPES, Replay, score
from queue_app.sim.simulate import Scenario, arrival_offsets

NEW, FIRST = CANDIDATES["new"], CANDIDATES["first (n*h/s, 50 talks)"]


def scenario(shape: str, seed: int, calls: int = 1000) -> Scenario:
    return Scenario(**(BASE | SHAPES[shape] | {"seed": seed, "calls": calls}))


def test_it_replays_simulates_callers_and_keeps_the_books_balanced() -> None:
    day = scenario("sinusoidal", 1, calls=300)
    replay = Replay(day, [NEW])
    callers = replay.run()
    offsets = arrival_offsets(day, random.Random("1:arrivals"))
    assert [c.arrived for c in callers] == offsets
    assert {c.state for c in callers} <= {"done", "abandoned"}  # everyone ends, exactly once
    answered = [c for c in callers if c.answered is not None]
    assert all(c.arrived <= c.answered <= c.ended for c in answered)  # type: ignore[operator]
    assert len(replay.departed) == len(callers)


def test_the_estimator_beats_the_first_one_and_asterisk_on_steady_and_sinusoidal_days() -> None:
    for shape in ("flat", "sinusoidal"):
        ours, first, asterisk = [], [], []
        for seed in (1, 2, 3):
            replay = Replay(scenario(shape, seed), [NEW, FIRST])
            replay.run()
            new_score, first_score = score(replay, NEW), score(replay, FIRST)
            assert new_score.measured > 300
            ours.append(new_score.ours)
            first.append(first_score.ours)
            asterisk.append(new_score.asterisk)
        assert statistics.mean(ours) < statistics.mean(first), shape
        assert max(ours) < min(asterisk), shape
