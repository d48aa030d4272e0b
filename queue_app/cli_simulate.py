"""`flask --app app simulate`: a day of calls through the whole product in virtual time."""

from __future__ import annotations

import json

import click
from flask import Flask

from .sim import simulate


@click.command("simulate")
@click.option("--calls", type=click.IntRange(min=1), help="Number of calls (default 1000 unless --hours).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), help="Length of the day instead.")
@click.option("--rate", "rate", type=float, default=120.0, show_default=True, help="Mean calls per hour.")
@click.option("--profile", type=click.Choice(simulate.PROFILES), default="flat", show_default=True)
@click.option(
    "--amplitude", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Sinusoidal swing."
)
@click.option("--handling-mean", type=float, default=180.0, show_default=True, help="Mean talk time (s).")
@click.option("--patience-mean", type=float, default=300.0, show_default=True, help="Mean patience (s).")
@click.option("--operators", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--strategy", type=click.Choice(simulate.STRATEGIES), default="fair", show_default=True)
@click.option("--wrap-up", "wrap_up", type=click.IntRange(0, 3600), default=0, show_default=True)
@click.option("--service-level-seconds", type=float, default=20.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--worker-interval",
    type=float,
    default=2.0,
    show_default=True,
    help="The worker's sweep (s); 0 runs it after every event, as the end-to-end tests do.",
)
@click.option("--database-url", help="Default: a temporary SQLite file, deleted afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def simulate_command(
    calls: int | None,
    hours: float | None,
    rate: float,
    profile: str,
    amplitude: float,
    handling_mean: float,
    patience_mean: float,
    operators: int,
    strategy: str,
    wrap_up: int,
    service_level_seconds: float,
    seed: int,
    worker_interval: float,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Run a day of simulated calls through the webhooks, the worker and the emulator; print the figures.

    A fresh database is created and migrated (never the app's own): use an empty one with
    --database-url.
    """
    if calls is not None and hours is not None:
        raise click.UsageError("give --calls or --hours, not both")
    if calls is None and hours is None:
        calls = 1000
    try:
        scenario = simulate.Scenario(
            calls=calls,
            hours=hours,
            rate_per_hour=rate,
            profile=profile,
            amplitude=amplitude,
            handling_mean=handling_mean,
            patience_mean=patience_mean,
            operators=operators,
            strategy=strategy,
            wrap_up_seconds=wrap_up,
            service_level_seconds=service_level_seconds,
            seed=seed,
            worker_interval=worker_interval,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    result = simulate.run(scenario, database_url)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in result.lines():
            click.echo(line)


def register(app: Flask) -> None:
    app.cli.add_command(simulate_command)
