"""The daily roll-up: one row per task type and name with counts, durations, CPU and memory."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select

from app.extensions import db
from app.models import DailyTaskStatistic, TaskExecution, TaskStatus, TaskType
from app.models.types import utcnow
from app.monitoring.percentiles import nearest_rank


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def roll_up(day: date | None = None) -> dict[str, Any]:
    """Replace ``day``'s rows (default: yesterday, UTC) from the executions created that day;
    running it twice gives the same rows. The caller commits."""
    day = day or (utcnow() - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=UTC)
    types: dict[int | None, str] = dict(
        db.session.execute(select(TaskType.id, TaskType.name)).all()
    )
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"counts": defaultdict(int), "durations": [], "cpu": [], "memory": []}
    )
    rows = db.session.execute(
        select(
            TaskExecution.task_type_id,
            TaskExecution.task_name,
            TaskExecution.status,
            TaskExecution.started_at,
            TaskExecution.completed_at,
            TaskExecution.cpu_seconds,
            TaskExecution.peak_memory_bytes,
        )
        .where(TaskExecution.created_at >= start, TaskExecution.created_at < start + timedelta(1))
        .execution_options(yield_per=5000)
    )
    for type_id, name, status, started, completed, cpu, memory in rows:
        group = groups[(types.get(type_id, ""), name or "")]
        group["counts"][TaskStatus(status).value] += 1
        if started is not None and completed is not None:
            group["durations"].append((completed - started).total_seconds())
        if cpu is not None:
            group["cpu"].append(cpu)
        if memory is not None:
            group["memory"].append(memory)
    db.session.execute(delete(DailyTaskStatistic).where(DailyTaskStatistic.day == day))
    computed_at = utcnow()
    for (type_name, name), group in sorted(groups.items()):
        counts = group["counts"]
        db.session.add(
            DailyTaskStatistic(
                day=day,
                task_type=type_name,
                task_name=name,
                total=sum(counts.values()),
                **{status.value: counts.get(status.value, 0) for status in TaskStatus},
                avg_duration_seconds=_mean(group["durations"]),
                p95_duration_seconds=nearest_rank(group["durations"], 0.95),
                avg_cpu_seconds=_mean(group["cpu"]),
                total_cpu_seconds=sum(group["cpu"]) if group["cpu"] else None,
                avg_peak_memory_bytes=_mean(group["memory"]),
                max_peak_memory_bytes=max(group["memory"]) if group["memory"] else None,
                computed_at=computed_at,
            )
        )
    db.session.flush()
    return {
        "day": day.isoformat(),
        "rows": len(groups),
        "executions": sum(sum(g["counts"].values()) for g in groups.values()),
    }
