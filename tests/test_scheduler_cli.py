"""Scheduler CLI: predefined schedules, batched cleanup, and the schedules command group."""

from __future__ import annotations

from datetime import timedelta

import redis
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import ScheduledTask, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.scheduler.store import get_store
from tests import factories
from tests.scheduler_support import scheduled_headers

PREDEFINED = {
    "idmc-daily-pipeline": ("data_pipeline.tasks.run_full_pipeline", "0 6 * * *"),
    "weekly-data-validation": ("data_pipeline.tasks.validate_data", "0 5 * * 1"),
    "hourly-health-check": ("task_monitoring.tasks.health_check", "0 * * * *"),
    "daily-statistics-aggregation": (
        "task_monitoring.tasks.aggregate_daily_statistics",
        "0 1 * * *",
    ),
    "queue-depth-snapshots": ("task_monitoring.tasks.snapshot_queues", "*/5 * * * *"),
}


def test_setup_scheduled_tasks_is_idempotent(app: Flask, runner) -> None:
    first = runner.invoke(args=["setup-scheduled-tasks"])
    assert first.exit_code == 0, first.output
    schedules = {s.name: s for s in db.session.scalars(select(ScheduledTask))}
    assert {n: (s.task, s.crontab) for n, s in schedules.items()} == PREDEFINED
    assert all(s.timezone == "UTC" and s.enabled for s in schedules.values())
    assert schedules["idmc-daily-pipeline"].kwargs == {"source": "idmc"}
    assert all(get_store().due_ms(s.id) for s in schedules.values())
    updated = {n: s.updated_at for n, s in schedules.items()}

    second = runner.invoke(args=["setup-scheduled-tasks"])
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.output and second.output.count("Found ") == len(PREDEFINED)
    db.session.expire_all()
    again = {s.name: s.updated_at for s in db.session.scalars(select(ScheduledTask))}
    assert again == updated


def count(**filters) -> int:
    query = select(func.count(TaskExecution.id)).filter_by(**filters)
    return db.session.scalar(query)


def test_cleanup_deletes_old_executions_in_batches(app: Flask, runner) -> None:
    long_ago, lately = utcnow() - timedelta(days=40), utcnow() - timedelta(days=2)
    same_time = timedelta(0)
    factories.executions(25, long_ago, same_time, task_name="t")
    factories.executions(5, long_ago, same_time, task_name="t", status=TaskStatus.FAILURE)
    factories.executions(7, lately, same_time, task_name="t")
    db.session.commit()
    statements: list[str] = []

    from sqlalchemy import event

    def watch(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("DELETE", "COMMIT")):
            statements.append(statement.split()[0].upper())

    dry = runner.invoke(args=["cleanup-old-executions", "--days", "30", "--dry-run"])
    assert dry.exit_code == 0 and "Would delete 30" in dry.output
    assert count() == 37

    only_success = [
        "cleanup-old-executions",
        "--days",
        "30",
        "--status",
        "success",
        "--batch-size",
        "10",
    ]
    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        result = runner.invoke(args=only_success)
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert result.exit_code == 0, result.output
    assert "Deleted 25" in result.output
    assert statements.count("DELETE") == 3  # 10 + 10 + 5, each batch its own statement
    assert count(status=TaskStatus.FAILURE) == 5 and count() == 12

    everything = runner.invoke(args=["cleanup-old-executions", "--days", "30"])
    assert "Deleted 5" in everything.output and count() == 7


def test_schedules_list_says_so_when_empty(app: Flask, runner) -> None:
    listing = runner.invoke(args=["schedules", "list"])
    assert listing.exit_code == 0, listing.output
    assert "No schedules yet" in listing.output and "flask setup-scheduled-tasks" in listing.output


def test_schedules_commands(app: Flask, runner, redis_client: redis.Redis) -> None:
    runner.invoke(args=["setup-scheduled-tasks"])
    listing = runner.invoke(args=["schedules", "list"])
    assert listing.exit_code == 0 and "hourly-health-check" in listing.output
    shown = runner.invoke(args=["schedules", "show", "idmc-daily-pipeline"])
    assert '"source": "idmc"' in shown.output and "next_due" in shown.output

    schedule = db.session.scalar(select(ScheduledTask).filter_by(name="hourly-health-check"))
    due = get_store().due_ms(schedule.id)
    ran = runner.invoke(args=["schedules", "run", "hourly-health-check"])
    assert ran.exit_code == 0, ran.output
    [headers] = scheduled_headers(redis_client)
    assert headers["id"] in ran.output and headers["ewas_run_kind"] == "manual"
    assert get_store().due_ms(schedule.id) == due

    assert runner.invoke(args=["schedules", "disable", str(schedule.id)]).exit_code == 0
    assert get_store().due_ms(schedule.id) is None
    assert runner.invoke(args=["schedules", "enable", "hourly-health-check"]).exit_code == 0
    assert get_store().due_ms(schedule.id) is not None

    missing = runner.invoke(args=["schedules", "show", "no-such-schedule"])
    assert missing.exit_code != 0 and "No schedule" in missing.output
