"""Run history: beat records each sent, failed or missed occurrence; old rows are pruned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow


@dataclass
class Outcome:
    """One occurrence as beat handled it (``task_id`` None for a missed one)."""

    schedule_id: int
    occurrence: datetime
    kind: RunKind
    task_id: str | None = None
    sent_at: datetime | None = None
    error: str | None = None
    finished: bool = False  # no occurrence left (a fired one-time entry): disable it


def record(outcomes: list[Outcome]) -> None:
    """Add the run rows and update the schedules' counters; the caller commits."""
    if not outcomes:
        return
    existing = set(
        db.session.scalars(
            select(ScheduledTask.id).where(ScheduledTask.id.in_({o.schedule_id for o in outcomes}))
        )
    )
    for outcome in outcomes:
        if outcome.schedule_id not in existing:  # deleted meanwhile
            continue
        db.session.add(
            ScheduleRun(
                schedule_id=outcome.schedule_id,
                occurrence=outcome.occurrence,
                kind=outcome.kind,
                task_id=outcome.task_id,
                sent_at=outcome.sent_at,
                error=outcome.error,
            )
        )
        if outcome.task_id is not None:
            db.session.execute(
                update(ScheduledTask)
                .where(ScheduledTask.id == outcome.schedule_id)
                .values(
                    last_run_at=outcome.sent_at or utcnow(),
                    total_run_count=ScheduledTask.total_run_count + 1,
                )
            )
        if outcome.finished:
            db.session.execute(
                update(ScheduledTask)
                .where(ScheduledTask.id == outcome.schedule_id)
                .values(enabled=False)
            )
    db.session.flush()


def prune(retention_days: int, now: datetime | None = None) -> int:
    """Delete run rows older than the retention; returns how many. The caller commits."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = db.session.execute(delete(ScheduleRun).where(ScheduleRun.created_at < cutoff))
    return result.rowcount or 0
