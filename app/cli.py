"""Flask CLI commands registered on the app."""

from __future__ import annotations

import click
from flask import Flask

from app.extensions import db


@click.command("seed")
def seed_command() -> None:
    """Create the default task types (idempotent)."""
    from app.services.task_types import seed_task_types

    created = seed_task_types()
    db.session.commit()
    if created:
        click.echo(f"Created task types: {', '.join(t.name for t in created)}")
    else:
        click.echo("All default task types already exist.")


def init_app(app: Flask) -> None:
    from app.local_run import run_local_command
    from app.scheduler import cli as scheduler_cli

    app.cli.add_command(seed_command)
    app.cli.add_command(run_local_command)
    scheduler_cli.init_app(app)
