"""More CLI groups, one per area; each area's module adds its own here."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import cli_config

    cli_config.register(app)
    from . import cli_worker

    cli_worker.register(app)
    from . import cli_simulate

    cli_simulate.register(app)
    return None
