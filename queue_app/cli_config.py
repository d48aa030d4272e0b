"""`flask --app app config export|import` and `flask --app app demo load`: thin over config_io."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from .demo import DEMO_CONFIG_PATH, demo_logins
from .services import config_io

config_cli = AppGroup("config", help="Configuration as code: export and import YAML or JSON.")
demo_cli = AppGroup("demo", help="The Swedish demo company Exempelbolaget AB.")


@config_cli.command("export")
@click.option("--org", "slug", help="The organisation's slug (needed when there are several).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)."
)
def export_command(slug: str | None, fmt: str, output: str | None) -> None:
    """Write an organisation's configuration (no passwords, no audio)."""
    if slug is None:
        slugs = config_io.organisation_slugs()
        if len(slugs) != 1:
            raise click.UsageError(
                f"choose an organisation with --org ({', '.join(slugs) or 'there is none'})"
            )
        slug = slugs[0]
    try:
        document = config_io.export_config(slug)
    except config_io.UnknownOrganisation as exc:
        raise click.ClickException(str(exc)) from exc
    content = config_io.dump_config(document, fmt)
    if output:
        with open(output, "w", encoding="utf-8") as file:
            file.write(content)
        click.echo(f"Wrote {output}.", err=True)
    else:
        click.echo(content, nl=False)


@config_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print what would change and change nothing.")
def import_command(file: str, dry_run: bool) -> None:
    """Make the organisation in FILE equal the file; an invalid file changes nothing."""
    try:
        data = config_io.read_config_file(file)
    except config_io.ConfigFileError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    report = config_io.import_config(data, dry_run=dry_run)
    _print_report(report, file)


def _print_report(report: config_io.ImportReport, source: str) -> None:
    lines = report.lines()
    if report.errors:
        click.echo(f"{source}: {lines[0]}", err=True)
        for line in lines[1:]:
            click.echo(line, err=True)
        sys.exit(1)
    for line in lines:
        click.echo(line)


@demo_cli.command("load")
def demo_load() -> None:
    """Load (or refresh) the demo company and print its log-ins. Demo passwords only!"""
    data = config_io.read_config_file(DEMO_CONFIG_PATH)
    report = config_io.import_config(data, dry_run=False)
    _print_report(report, str(DEMO_CONFIG_PATH))
    click.echo("")
    click.echo("Demo log-ins (demo passwords, never use them for real accounts):")
    for login in demo_logins(data):
        click.echo(f"  {login.role:<9} {login.email:<28} {login.password:<10} {login.plan}")


def register(app: Flask) -> None:
    app.cli.add_command(config_cli)
    app.cli.add_command(demo_cli)
