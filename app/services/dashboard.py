"""The dashboard's figures: hourly roll-ups for every window, and only bounded, indexed queries on
the execution table, so each panel costs the same at 1,000 or 1,000,000 executions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, literal, select

from app.extensions import db
from app.models import Alert, ExecutionHourly, ScheduledTask, TaskExecution, TaskStatus
from app.monitoring.failure_rates import judge
from app.services.statistics import SUMS, by_type, summarize, window_start

H = ExecutionHourly
# Counts of live rows stop at this bound ("1,000+"): an exact figure beyond it costs a scan.
COUNT_CAP = 1_000
IN_FLIGHT = (TaskStatus.PENDING, TaskStatus.STARTED, TaskStatus.RETRY)
TREND_HOURS = 7 * 24
RECENT_LIMIT = 15
SCHEDULE_CHOICES_LIMIT = 200


@dataclass(frozen=True)
class Count:
    """A count that may have stopped at its bound."""

    value: int
    capped: bool


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    success: int
    failure: int
    revoked: int

    @property
    def finished(self) -> int:
        return self.success + self.failure + self.revoked

    @property
    def success_rate(self) -> float | None:
        return self.success / self.finished if self.finished else None


def _capped(query: Any, cap: int) -> Any:
    """COUNT of ``query``'s rows, reading at most ``cap + 1`` of them."""
    return select(func.count()).select_from(query.limit(cap + 1).subquery())


def bounded_count(*conditions: Any, cap: int | None = None, model: Any = TaskExecution) -> Count:
    """Rows matching ``conditions``, counting no further than ``cap`` (default COUNT_CAP)."""
    cap = COUNT_CAP if cap is None else cap
    value = db.session.scalar(_capped(select(model.id).where(*conditions), cap)) or 0
    return Count(min(value, cap), value > cap)


def in_flight() -> dict[str, Count]:
    """Executions waiting, running and waiting to retry now, in one round trip; each count
    reads the (status, started_at) index and stops at COUNT_CAP."""
    cap = COUNT_CAP
    counts = [
        _capped(select(literal(1)).where(TaskExecution.status == s), cap).scalar_subquery()
        for s in IN_FLIGHT
    ]
    values = db.session.execute(select(*counts)).one()
    return {str(s): Count(min(v, cap), v > cap) for s, v in zip(IN_FLIGHT, values, strict=True)}


def last_hours(hours: int = 24) -> dict[str, Any]:
    """Finished executions of the last ``hours`` by status, with success rate and durations."""
    return summarize(db.session.execute(select(*SUMS).where(H.hour >= window_start(hours))).one())


def hourly_trend(hours: int = TREND_HOURS) -> list[HourBucket]:
    """One bucket per UTC hour of the window, oldest first; hours without executions included."""
    start = window_start(hours)
    rows = db.session.execute(
        select(H.hour, func.sum(H.success), func.sum(H.failure), func.sum(H.revoked))
        .where(H.hour >= start)
        .group_by(H.hour)
    ).all()
    by_hour = {hour: (int(s or 0), int(f or 0), int(r or 0)) for hour, s, f, r in rows}
    return [
        HourBucket(moment, *by_hour.get(moment, (0, 0, 0)))
        for moment in (start + timedelta(hours=i) for i in range(hours))
    ]


def durations_by_type(hours: int = TREND_HOURS) -> list[dict[str, Any]]:
    """Per task type over the window: executions, success rate, average and p95 duration."""
    return [
        {"task_type": name or "", **summary}
        for name, summary in sorted(by_type(hours).items(), key=lambda item: item[0] or "")
        if summary["finished"]
    ]


def failure_warnings() -> dict[str, Any]:
    """The error-rate panel over the alerting window: ``warnings`` (types failing more than
    ``FAILURE_RATE_THRESHOLD``), ``too_few`` (types with fewer executions than
    ``FAILURE_RATE_MIN_EXECUTIONS``, not judged), and that minimum; the rule of
    app.monitoring.failure_rates.judge."""
    config = current_app.config
    minimum = config["FAILURE_RATE_MIN_EXECUTIONS"]
    counts = {
        name: (
            summary["counts"]["failure"],
            summary["counts"]["success"] + summary["counts"]["failure"],
        )
        for name, summary in by_type(config["FAILURE_RATE_WINDOW_HOURS"]).items()
    }
    return {**judge(counts, config["FAILURE_RATE_THRESHOLD"], minimum), "minimum": minimum}


def open_alerts() -> Count:
    """Alerts nobody has acknowledged yet."""
    return bounded_count(Alert.acknowledged_at.is_(None), cap=999, model=Alert)


def recent_executions(limit: int = RECENT_LIMIT) -> list[TaskExecution]:
    """The newest executions (index on created_at, id)."""
    return list(
        db.session.scalars(
            select(TaskExecution)
            .order_by(TaskExecution.created_at.desc(), TaskExecution.id.desc())
            .limit(limit)
        )
    )


def schedule_choices(limit: int = SCHEDULE_CHOICES_LIMIT) -> list[tuple[int, str]]:
    """Enabled schedules by name, for the run-now form."""
    query = (
        select(ScheduledTask.id, ScheduledTask.name)
        .where(ScheduledTask.enabled.is_(True))
        .order_by(ScheduledTask.name)
        .limit(limit)
    )
    return [(row.id, row.name) for row in db.session.execute(query)]
