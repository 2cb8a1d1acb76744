"""Flask CLI commands: the general ones, and the registration of every command of the engine."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask

from app.extensions import db
from app.models import TaskStatus
from app.models.types import utcnow


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


@click.command("cleanup-old-executions")
@click.option("--days", type=click.IntRange(min=0), required=True, help="Keep this many days.")
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice([s.value for s in TaskStatus]),
    help="Only executions with this status (repeatable). Default: every status.",
)  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def cleanup_old_executions_command(
    days: int, statuses: tuple[str, ...], batch_size: int, dry_run: bool
) -> None:
    """Delete executions older than --days, in batches, each batch in its own transaction."""
    from app.tracking.retention import count_old, delete_batch

    cutoff = utcnow() - timedelta(days=days)
    wanted = [TaskStatus(s) for s in statuses]
    total = count_old(cutoff, wanted)
    if dry_run:
        click.echo(f"Would delete {total} executions created before {cutoff.isoformat()}.")
        return
    deleted = 0
    with click.progressbar(length=total, label="Deleting executions") as bar:
        while deleted < total and (count := delete_batch(cutoff, wanted, batch_size)):
            db.session.commit()
            deleted += count
            bar.update(count)
    click.echo(f"Deleted {deleted} executions created before {cutoff.isoformat()}.")


def init_app(app: Flask) -> None:
    """Every ``flask`` command of the engine, registered here and only here."""
    from app.auth.cli import tokens_cli, users_cli
    from app.local_run import run_local_command
    from app.scheduler.cli import schedules_cli, setup_scheduled_tasks_command
    from app.tracking.cli import recorder_command
    from app.watch.cli import watch_command

    for command in (
        seed_command,
        rebuild_rollups_command,
        cleanup_old_executions_command,
        run_local_command,
        recorder_command,
        watch_command,
        setup_scheduled_tasks_command,
        schedules_cli,
        users_cli,
        tokens_cli,
    ):
        app.cli.add_command(command)
