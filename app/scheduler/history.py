"""Run history: beat records each sent, failed, missed or skipped occurrence; old rows are pruned.

Beat queues each outcome as a row in its Redis outbox (with the claim or the send that made it)
and drains the outbox here, so rows wait out a database outage; writing a row is idempotent on
(schedule, occurrence), so a drain retried after a commit whose answer was lost adds nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from app.database import rowcount
from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler.timing import from_ms, to_ms


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
    reason: str | None = None  # why it was not sent (skipped: the previous run still ran)

    def to_row(self) -> dict[str, Any]:
        """JSON for the outbox (times as epoch ms)."""
        row = asdict(self)
        row["kind"] = str(self.kind)
        for name in ("occurrence", "sent_at"):
            row[name] = None if row[name] is None else to_ms(row[name])
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Outcome:
        times = {n: None if row[n] is None else from_ms(row[n]) for n in ("occurrence", "sent_at")}
        return cls(**{**row, **times, "kind": RunKind(row["kind"])})


def _recorded(outcomes: list[Outcome]) -> set[tuple[int, datetime]]:
    """Which of these (schedule, occurrence) pairs ``schedule_runs`` already holds."""
    moments = [o.occurrence for o in outcomes]
    rows = db.session.execute(
        select(ScheduleRun.schedule_id, ScheduleRun.occurrence).where(
            ScheduleRun.schedule_id.in_({o.schedule_id for o in outcomes}),
            ScheduleRun.occurrence.between(min(moments), max(moments)),
            ScheduleRun.kind != RunKind.MANUAL,
        )
    )
    return {(sid, from_ms(to_ms(occurrence))) for sid, occurrence in rows}


def record(outcomes: list[Outcome]) -> int:
    """Add the run rows not recorded yet and update the schedules' counters; returns how many
    were added. The caller commits."""
    if not outcomes:
        return 0
    existing = set(
        db.session.scalars(
            select(ScheduledTask.id).where(ScheduledTask.id.in_({o.schedule_id for o in outcomes}))
        )
    )
    done = _recorded(outcomes)
    added = 0
    for outcome in outcomes:
        key = (outcome.schedule_id, from_ms(to_ms(outcome.occurrence)))
        if outcome.schedule_id not in existing or key in done:  # deleted meanwhile, or recorded
            continue
        done.add(key)
        added += 1
        db.session.add(
            ScheduleRun(
                schedule_id=outcome.schedule_id,
                occurrence=outcome.occurrence,
                kind=outcome.kind,
                task_id=outcome.task_id,
                sent_at=outcome.sent_at,
                error=outcome.error,
                reason=outcome.reason and outcome.reason[:255],
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
    return added


def prune(retention_days: int, now: datetime | None = None) -> int:
    """Delete run rows older than the retention; returns how many. The caller commits."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return rowcount(db.session.execute(delete(ScheduleRun).where(ScheduleRun.created_at < cutoff)))
