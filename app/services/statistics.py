"""Statistics read from the hourly roll-ups (app.models.statistics), never the execution table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import ExecutionHourly, TaskExecution, TaskStatus
from app.models.statistics import HISTOGRAM_COLUMNS
from app.models.types import utcnow
from app.services.rollups import percentile

IN_FLIGHT = (TaskStatus.PENDING, TaskStatus.STARTED, TaskStatus.RETRY)
H = ExecutionHourly
SUMS = [
    func.coalesce(func.sum(getattr(H, c)), 0).label(c)
    for c in ("success", "failure", "revoked", "duration_count", "duration_sum", *HISTOGRAM_COLUMNS)
]


def window_start(hours: int) -> datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)


def summarize(row: Any) -> dict[str, Any]:
    """Counts, success rate, average and p95 duration of one group of roll-up sums."""
    data = row._mapping
    finished = data["success"] + data["failure"] + data["revoked"]
    histogram = [int(data[c]) for c in HISTOGRAM_COLUMNS]
    return {
        "counts": {
            "success": int(data["success"]),
            "failure": int(data["failure"]),
            "revoked": int(data["revoked"]),
        },
        "finished": int(finished),
        "success_rate": round(data["success"] / finished, 4) if finished else None,
        "duration_avg_seconds": (
            round(data["duration_sum"] / data["duration_count"], 3)
            if data["duration_count"]
            else None
        ),
        "duration_p95_seconds": percentile(histogram, 0.95),
    }


def by_type(hours: int) -> dict[str, dict[str, Any]]:
    """Roll-up summaries per task type over the last ``hours``."""
    query = select(H.task_type, *SUMS).where(H.hour >= window_start(hours)).group_by(H.task_type)
    return {row.task_type: summarize(row) for row in db.session.execute(query)}


def series(task_type: str, hours: int, bucket: str) -> list[dict[str, Any]]:
    """Hourly (or daily) buckets of one type's counts and durations; empty buckets included."""
    start = window_start(hours)
    query = select(H.hour, *SUMS).where(H.task_type == task_type, H.hour >= start).group_by(H.hour)
    by_hour = {row.hour: row for row in db.session.execute(query)}
    step = timedelta(hours=1 if bucket == "hour" else 24)
    if bucket == "day":
        start = start.replace(hour=0)
    buckets: list[dict[str, Any]] = []
    moment, end = start, utcnow()
    while moment <= end:
        rows = [r for h, r in by_hour.items() if moment <= h < moment + step]
        merged = {c.name: sum(r._mapping[c.name] for r in rows) for c in SUMS}
        buckets.append({"start": moment, **summarize(_Row(merged))})
        moment += step
    return buckets


class _Row:
    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


def overview(hours: int, top: int = 5) -> dict[str, Any]:
    """Totals by status, success rate, hourly throughput, busiest and most failing tasks."""
    start = window_start(hours)
    totals = summarize(db.session.execute(select(*SUMS).where(H.hour >= start)).one())
    in_flight = dict(
        db.session.execute(
            select(TaskExecution.status, func.count())
            .where(TaskExecution.status.in_(IN_FLIGHT))
            .group_by(TaskExecution.status)
        ).all()
    )
    per_hour = db.session.execute(
        select(H.hour, func.sum(H.success + H.failure + H.revoked))
        .where(H.hour >= start)
        .group_by(H.hour)
        .order_by(H.hour)
    ).all()
    per_name = db.session.execute(
        select(
            H.task_name,
            func.sum(H.success + H.failure + H.revoked).label("n"),
            func.sum(H.failure).label("f"),
        )
        .where(H.hour >= start)
        .group_by(H.task_name)
    ).all()
    busiest = sorted(per_name, key=lambda r: (-r.n, r.task_name))[:top]
    failing = sorted((r for r in per_name if r.f), key=lambda r: (-r.f, r.task_name))[:top]
    by_status = {**totals["counts"], **{str(s): int(in_flight.get(s, 0)) for s in IN_FLIGHT}}
    return {
        "window_hours": hours,
        "by_status": by_status,
        "success_rate": totals["success_rate"],
        "duration_avg_seconds": totals["duration_avg_seconds"],
        "duration_p95_seconds": totals["duration_p95_seconds"],
        "throughput_per_hour": [{"hour": h, "finished": int(n or 0)} for h, n in per_hour],
        "busiest_tasks": [{"task_name": r.task_name, "count": int(r.n)} for r in busiest],
        "most_failing_tasks": [
            {
                "task_name": r.task_name,
                "failures": int(r.f),
                "failure_rate": round(r.f / r.n, 4) if r.n else None,
            }
            for r in failing
        ],
    }
