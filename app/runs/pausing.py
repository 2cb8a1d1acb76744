"""Pause after failures: a schedule with ``pause_after_failures`` N disables itself once its
latest N runs failed, raises one alert, and says why until an operator enables it again.

The recorder checks it in the transaction that folds a run to failure (``apply_batch``), so it
works while beat is down, and the disable commits with the failure that caused it. The pause is
one conditional update: of several recorders, or a batch applied twice, only one pauses the
schedule and raises the alert. Runs count from the moment the schedule was (re)enabled or
retimed (``scheduled_from``), so a resumed schedule gets N more tries; manual runs do not count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from app.database import rowcount
from app.extensions import db
from app.models import Alert, PipelineRun, RunStatus, ScheduledTask
from app.models.types import utcnow
from app.scheduler.service import changed_elsewhere
from app.tracking.alerts import is_critical, raise_alert

ALERT_KIND = "schedule_paused"


def pause_failing(failed: list[dict[str, Any]]) -> list[int]:
    """Pause the schedules of the runs that just ``failed`` (from ``record_runs``) that reached
    their limit; returns the ids of the alerts raised. The caller commits."""
    ids = sorted(
        {
            run["schedule_id"]
            for run in failed
            if run.get("schedule_id") is not None and run.get("run_kind") != "manual"
        }
    )
    if not ids:
        return []
    candidates = db.session.execute(
        select(
            ScheduledTask.id,
            ScheduledTask.name,
            ScheduledTask.task,
            ScheduledTask.chain,
            ScheduledTask.pause_after_failures,
            ScheduledTask.scheduled_from,
        ).where(
            ScheduledTask.id.in_(ids),
            ScheduledTask.enabled,
            ScheduledTask.pause_after_failures.is_not(None),
            ScheduledTask.paused_after_failures.is_(None),
        )
    ).all()
    alert_ids = []
    for schedule in candidates:
        limit = schedule.pause_after_failures
        if not failed_in_a_row(schedule.id, limit, schedule.scheduled_from):
            continue
        paused = db.session.execute(
            update(ScheduledTask)
            .where(
                ScheduledTask.id == schedule.id,
                ScheduledTask.enabled,
                ScheduledTask.paused_after_failures.is_(None),
            )
            .values(enabled=False, paused_after_failures=limit, paused_at=utcnow())
        )
        if rowcount(paused) != 1:
            continue  # another recorder paused it first
        changed_elsewhere(schedule.id)  # leaves the Redis projection after the commit
        alert = _alert(schedule, limit)
        if alert is not None:
            alert_ids.append(alert.id)
    return alert_ids


def failed_in_a_row(schedule_id: int, count: int, since: datetime) -> bool:
    """Whether the schedule's latest ``count`` runs since ``since`` (manual ones aside) all
    failed; a run still running among them breaks the series."""
    statuses = db.session.scalars(
        select(PipelineRun.status)
        .where(
            PipelineRun.schedule_id == schedule_id,
            or_(PipelineRun.run_kind.is_(None), PipelineRun.run_kind != "manual"),
            PipelineRun.created_at >= since,
        )
        .order_by(PipelineRun.created_at.desc(), PipelineRun.id.desc())
        .limit(count)
    ).all()
    return len(statuses) == count and all(s == RunStatus.FAILURE for s in statuses)


def _alert(schedule: Any, limit: int) -> Alert | None:
    """The schedule_paused alert (``raise_alert`` leaves out a repeat within the hour)."""
    names = [schedule.task, *((step or {}).get("task") for step in schedule.chain or [])]
    critical = any(is_critical({"task_name": name}, None) for name in names if name)
    return raise_alert(
        ALERT_KIND,
        f"Schedule {schedule.name} paused after {limit} consecutive failures",
        f"Its latest {limit} runs failed, so it was disabled. Enable it again to resume.",
        severity="critical" if critical else "error",
    )
