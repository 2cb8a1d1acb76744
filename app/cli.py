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


@click.command("rebuild-rollups")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True,
              help="Recount the hourly statistics of this many past days.")  # fmt: skip
def rebuild_rollups_command(days: int) -> None:
    """Recount the hourly statistics from the stored executions (after a restore or a fix)."""
    from datetime import UTC, datetime, timedelta

    from app.monitoring.rollups import rebuild
    from app.tracking.apply import RECORDER_LOCK

    counted = rebuild(datetime.now(UTC) - timedelta(days=days), lock=RECORDER_LOCK)
    db.session.commit()
    click.echo(f"Recounted {counted} final executions over the last {days} days.")


def init_app(app: Flask) -> None:
    from app.local_run import run_local_command
    from app.scheduler import cli as scheduler_cli
    from app.watch.cli import watch_command

    app.cli.add_command(seed_command)
    app.cli.add_command(rebuild_rollups_command)
    app.cli.add_command(run_local_command)
    app.cli.add_command(watch_command)
    scheduler_cli.init_app(app)
