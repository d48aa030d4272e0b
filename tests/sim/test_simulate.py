"""`simulate`: a small day through the whole product in virtual time; the books balance."""

from __future__ import annotations

import json
import random

import pytest
from flask import Flask

from queue_app.clock import ManualClock
from queue_app.sim import simulate
from queue_app.sim.simulate import Scenario

SMALL = Scenario(
    calls=200, rate_per_hour=240, operators=3, handling_mean=40, patience_mean=90, wrap_up_seconds=5, seed=7
)


def test_a_small_day_balances_its_books_and_gives_plausible_figures(app: Flask, clock: ManualClock) -> None:
    result = simulate.run_in(app, clock, SMALL)
    books = result.books
    assert result.placed == 200
    assert books.offered == 200  # the product recorded every call that rang
    assert books.answered + books.abandoned + books.overflowed + books.other == books.offered
    assert books.answered > 100 and books.abandoned > 0
    assert result.service_level is not None and 0 <= result.service_level <= 1
    assert result.occupancy is not None and 0 < result.occupancy <= 1
    assert result.wait_mean is not None and result.wait_p90 is not None
    assert 0 <= result.wait_mean <= result.wait_p90
    assert result.estimates_measured > 0
    assert result.error_ours is not None and result.error_asterisk is not None
    assert result.emulator_errors == 0

    figures = result.to_json()
    assert set(figures["calls"]) >= {"offered", "answered", "abandoned", "overflowed"}
    assert set(figures["wait_s"]) >= {"mean", "p90"}
    assert set(figures["expected_wait_error"]) >= {"ours", "asterisk"}
    for key in ("service_level", "occupancy", "run_seconds"):
        assert key in figures
    json.dumps(figures)


def test_the_same_seed_gives_the_same_day() -> None:
    scenario = Scenario(calls=40, rate_per_hour=240, operators=2, handling_mean=40, patience_mean=60, seed=3)
    first, second = simulate.run(scenario), simulate.run(scenario)
    assert first.to_json() | {"run_seconds": 0} == second.to_json() | {"run_seconds": 0}
    other = simulate.run(Scenario(**{**scenario.__dict__, "seed": 4}))
    assert other.to_json()["wait_s"] != first.to_json()["wait_s"]


def test_the_cli_prints_json(runner, database_url: str) -> None:  # type: ignore[no-untyped-def]
    args = ["simulate", "--calls", "20", "--operators", "2", "--rate", "240", "--handling-mean", "30"]
    result = runner.invoke(args=[*args, "--seed", "2", "--json", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["calls"]["offered"] == 20
    assert figures["scenario"]["seed"] == 2
    text = runner.invoke(args=["simulate", "--calls", "5", "--hours", "1"])
    assert text.exit_code != 0 and "not both" in text.output


def test_arrivals_follow_the_rate_flat_and_sinusoidal() -> None:
    flat = simulate.arrival_offsets(Scenario(hours=10, calls=None, rate_per_hour=360), random.Random(1))
    assert 3400 < len(flat) < 3800
    day = Scenario(hours=10, calls=None, rate_per_hour=360, profile="sinusoidal", amplitude=0.8)
    times = simulate.arrival_offsets(day, random.Random(1))
    first_half = sum(1 for t in times if t < 5 * 3600)
    second_half = len(times) - first_half
    assert 3400 < len(times) < 3800
    assert first_half > 1.6 * second_half  # sin > 0 in the first half of the period
    assert simulate.rate_at(day, 2.5 * 3600) == pytest.approx(0.1 * 1.8)
    assert len(simulate.arrival_offsets(Scenario(calls=50), random.Random(1))) == 50


def test_a_scenario_is_bounded_by_calls_or_hours() -> None:
    with pytest.raises(ValueError):
        Scenario(calls=None, hours=None)
    with pytest.raises(ValueError):
        Scenario(strategy="lottery")
