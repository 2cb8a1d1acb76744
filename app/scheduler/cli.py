"""Scheduler commands: ``setup-scheduled-tasks``, ``schedules ...``."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import DomainError
from app.extensions import db
from app.models import ScheduledTask, ScheduleRun
from app.scheduler import service
from app.scheduler.store import get_store
from app.scheduler.timing import from_ms

schedules_cli = AppGroup("schedules", help="List, inspect, run, enable and disable schedules.")


@click.command("setup-scheduled-tasks")
def setup_scheduled_tasks_command() -> None:
    """Create the spec's predefined schedules (idempotent: existing ones are left alone)."""
    from app.scheduler.predefined import setup_predefined

    created, found = setup_predefined()
    db.session.commit()
    for schedule in found:
        click.echo(f"Found {schedule.name} ({schedule.task}), left unchanged.")
    for schedule in created:
        click.echo(f"Created {schedule.name} ({schedule.task}, {schedule.crontab}).")
    if not created:
        click.echo("All predefined schedules already exist; nothing changed.")


def _load(name: str) -> ScheduledTask:
    try:
        return service.get_schedule(name)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None


@schedules_cli.command("list")
def list_command() -> None:
    """List every schedule with its timing, state and next due time."""
    store = get_store()
    schedules = list(db.session.scalars(select(ScheduledTask).order_by(ScheduledTask.name)))
    if not schedules:
        click.echo(
            "No schedules yet. Create the predefined ones with `flask setup-scheduled-tasks`, "
            "or a new one on the Scheduled page or through the API (POST /tasks/api/scheduled/)."
        )
        return
    for s in schedules:
        timing = s.crontab or (
            f"every {s.interval_every} {s.interval_unit}" if s.interval_every else f"at {s.run_at}"
        )
        due = store.due_ms(s.id)
        state = "enabled" if s.enabled else "disabled"
        next_text = from_ms(due).isoformat() if due is not None else "-"
        click.echo(f"{s.id:>4}  {s.name:<32} {state:<8} {timing} ({s.timezone})  next: {next_text}")


@schedules_cli.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Show one schedule (by name or id) and its latest runs."""
    s = _load(name)
    due = get_store().due_ms(s.id)
    fields = {
        "id": s.id, "name": s.name, "task": s.task, "kind": str(s.kind), "crontab": s.crontab,
        "interval": f"{s.interval_every} {s.interval_unit}" if s.interval_every else None,
        "run_at": s.run_at, "timezone": s.timezone, "args": s.args, "kwargs": s.kwargs,
        "queue": s.queue, "priority": s.priority, "retry_policy": s.retry_policy,
        "chain": s.chain, "misfire_policy": str(s.misfire_policy), "enabled": s.enabled,
        "overlap_policy": str(s.overlap_policy), "pause_after_failures": s.pause_after_failures,
        "paused_after_failures": s.paused_after_failures, "paused_at": s.paused_at,
        "start_at": s.start_at, "expires_at": s.expires_at, "last_run_at": s.last_run_at,
        "total_run_count": s.total_run_count, "next_due": from_ms(due) if due else None,
        "description": s.description,
    }  # fmt: skip
    click.echo(json.dumps(fields, indent=2, default=str, ensure_ascii=False))
    runs = db.session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == s.id)
        .order_by(ScheduleRun.id.desc())
        .limit(10)
    )
    for run in runs:
        click.echo(
            f"  {run.occurrence.isoformat()}  {run.kind:<9} {run.task_id or '-'}  "
            f"{run.error or run.reason or ''}"
        )


@schedules_cli.command("run")
@click.argument("name")
def run_command(name: str) -> None:
    """Send a schedule's task now; its next due time is unchanged."""
    run = service.run_now(_load(name))
    db.session.commit()
    if run.error:
        raise click.ClickException(f"sending failed: {run.error}")
    click.echo(f"Sent {run.task_id}.")


@schedules_cli.command("enable")
@click.argument("name")
def enable_command(name: str) -> None:
    """Enable a schedule; it next runs at its first occurrence after now."""
    schedule = service.set_enabled(_load(name), True)
    db.session.commit()
    click.echo(f"Enabled {schedule.name}.")


@schedules_cli.command("disable")
@click.argument("name")
def disable_command(name: str) -> None:
    """Disable a schedule; beat stops waking up for it at once."""
    schedule = service.set_enabled(_load(name), False)
    db.session.commit()
    click.echo(f"Disabled {schedule.name}.")


@schedules_cli.command("sync")
def sync_command() -> None:
    """Rebuild the Redis schedule store from the database where they differ."""
    changed = service.sync_all()
    click.echo(f"{changed} entries written or removed.")
