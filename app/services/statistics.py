"""Statistics read from the hourly roll-ups (app.models.statistics), never the execution table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import false, func, or_, select

from app.extensions import db
from app.models import ExecutionHourly, TaskExecution, TaskStatus, TaskType
from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS
from app.models.types import utcnow
from app.monitoring.percentiles import from_histogram, nearest_rank
from app.monitoring.rollups import COUNTED

IN_FLIGHT = (TaskStatus.PENDING, TaskStatus.STARTED, TaskStatus.RETRY)
H = ExecutionHourly
SUMS = [
    func.coalesce(func.sum(getattr(H, c)), 0).label(c)
    for c in ("success", "failure", "revoked", "duration_count", "duration_sum", *HISTOGRAM_COLUMNS)
]


def window_start(hours: int) -> datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)


Durations = list[tuple[datetime, float]]  # (completed_at, seconds) of final executions


def summarize(row: Any, durations: list[float] | None = None) -> dict[str, Any]:
    """Counts, success rate, average and p95 duration of one group of roll-up sums.

    The p95 is exact when the group's ``durations`` are given, else estimated from the
    histogram (``duration_p95_estimate`` says which)."""
    data = row._mapping
    finished = data["success"] + data["failure"] + data["revoked"]
    histogram = [int(data[c]) for c in HISTOGRAM_COLUMNS]
    if durations is not None:
        p95, estimate = nearest_rank(durations, 0.95), False
    else:
        p95 = from_histogram(histogram, 0.95, DURATION_BOUNDS)
        estimate = p95 is not None
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
        "duration_p95_seconds": p95,
        "duration_p95_estimate": estimate,
    }


def exact_limit() -> int:
    return int(current_app.config["STATS_EXACT_PERCENTILE_MAX"])


def durations(start: datetime, types: Collection[str] | None = None) -> dict[str, Durations]:
    """The durations of the executions the roll-ups counted since ``start``, per task type name
    ("" for none), for ``types`` (all when None). Callers bound how many there are from the
    roll-ups' ``duration_count`` first: this reads rows (index on type and completed_at)."""
    names = dict(db.session.execute(select(TaskType.id, TaskType.name)).all())
    E = TaskExecution
    query = select(E.task_type_id, E.started_at, E.completed_at).where(
        E.status.in_(COUNTED), E.started_at.is_not(None), E.completed_at >= start
    )
    if types is not None:
        wanted = [type_id for type_id, name in names.items() if name in types]
        query = query.where(
            or_(E.task_type_id.in_(wanted), E.task_type_id.is_(None) if "" in types else false())
        )
    found: dict[str, Durations] = defaultdict(list)
    for type_id, started, completed in db.session.execute(query):
        if started is None or completed is None:  # the query selects neither
            continue
        completed = completed if completed.tzinfo else completed.replace(tzinfo=UTC)
        started = started if started.tzinfo else started.replace(tzinfo=UTC)
        seconds = max((completed - started).total_seconds(), 0.0)
        found[names.get(type_id or 0, "")].append((completed, seconds))
    return found


def by_type(hours: int) -> dict[str, dict[str, Any]]:
    """Roll-up summaries per task type over the last ``hours``; exact percentiles for the
    smallest types as long as their durations add up to at most ``exact_limit()``."""
    start = window_start(hours)
    query = select(H.task_type, *SUMS).where(H.hour >= start).group_by(H.task_type)
    rows = list(db.session.execute(query))
    exact, budget = set(), exact_limit()
    for row in sorted(rows, key=lambda r: r.duration_count):
        if row.duration_count > budget:
            break
        exact.add(row.task_type)
        budget -= row.duration_count
    read = durations(start, exact) if exact else {}
    return {
        row.task_type: summarize(
            row,
            _matching(read.get(row.task_type, []), row.duration_count)
            if row.task_type in exact
            else None,
        )
        for row in rows
    }


def _matching(found: Durations, counted: int) -> list[float] | None:
    """The durations read, or None when they are not the ones the roll-ups counted (executions
    purged by retention, or a roll-up recount pending): then the histogram is the better guess."""
    return [seconds for _, seconds in found] if len(found) == counted else None


def series(task_type: str, hours: int, bucket: str) -> list[dict[str, Any]]:
    """Hourly (or daily) buckets of one type's counts and durations; empty buckets included."""
    start = window_start(hours)
    query = select(H.hour, *SUMS).where(H.task_type == task_type, H.hour >= start).group_by(H.hour)
    by_hour = {row.hour: row for row in db.session.execute(query)}
    read: Durations | None = None
    counted = sum(r.duration_count for r in by_hour.values())
    if counted <= exact_limit():
        read = durations(start, {task_type}).get(task_type, [])
        read = read if len(read) == counted else None
    step = timedelta(hours=1 if bucket == "hour" else 24)
    if bucket == "day":
        start = start.replace(hour=0)
    buckets: list[dict[str, Any]] = []
    moment, end = start, utcnow()
    while moment <= end:
        rows = [r for h, r in by_hour.items() if moment <= h < moment + step]
        merged = {c.name: sum(r._mapping[c.name] for r in rows) for c in SUMS}
        inside = None if read is None else [s for c, s in read if moment <= c < moment + step]
        buckets.append({"start": moment, **summarize(_Row(merged), inside)})
        moment += step
    return buckets


def daily(day: date) -> dict[str, Any]:
    """The executions that became final on ``day`` (UTC), per task type and name, summed from
    the hourly roll-ups (p95 estimated from their histogram)."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    query = (
        select(H.task_type, H.task_name, *SUMS)
        .where(H.hour >= start, H.hour < start + timedelta(days=1))
        .group_by(H.task_type, H.task_name)
        .order_by(H.task_type, H.task_name)
    )
    tasks = [
        {"task_type": row.task_type, "task_name": row.task_name, **summarize(row)}
        for row in db.session.execute(query)
    ]
    return {"day": day.isoformat(), "finished": sum(t["finished"] for t in tasks), "tasks": tasks}


class _Row:
    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


def overview(hours: int, top: int = 5) -> dict[str, Any]:
    """Totals by status, success rate, hourly throughput, busiest and most failing tasks."""
    start = window_start(hours)
    sums = db.session.execute(select(*SUMS).where(H.hour >= start)).one()
    read = None
    if sums.duration_count <= exact_limit():
        everything = [d for group in durations(start).values() for d in group]
        read = _matching(everything, sums.duration_count)
    totals = summarize(sums, read)
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
        "duration_p95_estimate": totals["duration_p95_estimate"],
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
