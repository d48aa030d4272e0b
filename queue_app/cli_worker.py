"""`flask --app app worker` (the worker process) and `flask --app app serve` (web + worker thread)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import worker


@click.command("worker")
@click.option("--interval", default=worker.DEFAULT_INTERVAL_SECONDS, show_default=True, help="Sweep (s).")
@with_appcontext
def worker_command(interval: float) -> None:
    """Run the dispatcher and timers until SIGTERM (Procfile: worker)."""
    worker.run_forever(current_app._get_current_object(), interval=interval)  # type: ignore[attr-defined]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run the worker in a background thread.")
@with_appcontext
def serve_command(host: str, port: int, no_worker: bool) -> None:
    """The development server (threaded) with the worker in a background thread (`make run`)."""
    from werkzeug.serving import run_simple

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    stop = None
    if not no_worker:
        _thread, stop = worker.start_in_thread(app)
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if stop is not None:
            stop.set()
            worker.dispatch.wake_event.set()


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
    app.cli.add_command(serve_command)
