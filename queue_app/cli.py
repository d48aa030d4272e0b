"""Command-line entry points (`flask --app app ...`): thin wrappers over services."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from . import migrations

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: the newest)."""
    migrations.upgrade(revision)
    click.echo(f"Database at {migrations.current_revision() or 'base'}.")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    migrations.downgrade(revision)
    click.echo(f"Database at {migrations.current_revision() or 'base'}.")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    migrations.autogenerate(message)


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)
    from . import cli_commands

    cli_commands.register(app)
