"""The distribution of one task's execution times: the last 24 hours and 7 days, and its p95 per
day, read from the hourly roll-ups (app.models.statistics) so it costs the same at 10 million
executions as at ten.

Percentiles go through app.monitoring.percentiles: exact (nearest rank over the durations
themselves) when the task's types finished at most ``STATS_EXACT_PERCENTILE_MAX`` executions in
the period, else estimated inside the roll-ups' histogram buckets and flagged as estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import false, func, or_, select

from app.extensions import db
from app.models import ExecutionHourly, TaskExecution, TaskType
from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS
from app.models.types import utcnow
from app.monitoring.percentiles import from_histogram, nearest_rank
from app.monitoring.rollups import COUNTED
from app.services.argument_search import CONTROL
from app.services.catalog import registered_tasks
from app.services.statistics import exact_limit, window_start

H = ExecutionHourly
WINDOWS = (("24h", 24), ("7d", 24 * 7))
TREND_DAYS = 7
SHARES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
COLUMNS = ("success", "failure", "revoked", "duration_count", "duration_sum", *HISTOGRAM_COLUMNS)


@dataclass
class _Hour:
    hour: datetime
    sums: dict[str, float]


def _hours(task_name: str, start: datetime) -> list[_Hour]:
    """The task's roll-up rows since ``start``, all its types added up per hour."""
    query = (
        select(H.hour, *(func.sum(getattr(H, c)).label(c) for c in COLUMNS))
        .where(H.task_name == task_name, H.hour >= start)
        .group_by(H.hour)
    )
    rows = []
    for row in db.session.execute(query):
        hour = row.hour if row.hour.tzinfo else row.hour.replace(tzinfo=UTC)
        rows.append(_Hour(hour, {c: row._mapping[c] or 0 for c in COLUMNS}))
    return rows


Durations = list[tuple[datetime, float]]


def _durations(task_name: str, start: datetime, counted: int) -> Durations | None:
    """(completed_at, seconds) of the task's executions the roll-ups counted since ``start``, or
    None when reading them is not bounded (its types finished more than the exact limit) or
    they are not the ones counted (purged, or a recount pending)."""
    types = list(
        db.session.scalars(
            select(H.task_type).where(H.task_name == task_name, H.hour >= start).distinct()
        )
    )
    if counted > exact_limit() or not types:
        return None
    type_total = db.session.scalar(
        select(func.coalesce(func.sum(H.duration_count), 0)).where(
            H.task_type.in_(types), H.hour >= start
        )
    )
    if (type_total or 0) > exact_limit():  # the (type, completed_at) index would read them all
        return None
    ids = list(db.session.scalars(select(TaskType.id).where(TaskType.name.in_(types))))
    E = TaskExecution
    query = select(E.started_at, E.completed_at).where(
        or_(E.task_type_id.in_(ids), E.task_type_id.is_(None) if "" in types else false()),
        E.completed_at >= start,
        E.task_name == task_name,
        E.status.in_(COUNTED),
        E.started_at.is_not(None),
    )
    found: list[tuple[datetime, float]] = []
    for started, completed in db.session.execute(query):
        if started is None or completed is None:  # excluded by the query; for the type checker
            continue
        completed = completed if completed.tzinfo else completed.replace(tzinfo=UTC)
        started = started if started.tzinfo else started.replace(tzinfo=UTC)
        found.append((completed, max((completed - started).total_seconds(), 0.0)))
    return found if len(found) == counted else None


def _summary(hours: Sequence[_Hour], durations: list[float] | None) -> dict[str, Any]:
    sums = {c: sum(h.sums[c] for h in hours) for c in COLUMNS}
    histogram = [int(sums[c]) for c in HISTOGRAM_COLUMNS]
    percentiles = {
        name: nearest_rank(durations, share)
        if durations is not None
        else from_histogram(histogram, share, DURATION_BOUNDS)
        for name, share in SHARES
    }
    count = int(sums["duration_count"])
    return {
        "counts": {c: int(sums[c]) for c in COUNTED},
        "finished": sum(int(sums[c]) for c in COUNTED),
        "duration_count": count,
        "duration_avg_seconds": round(sums["duration_sum"] / count, 3) if count else None,
        **{f"{name}_seconds": value for name, value in percentiles.items()},
        "estimate": durations is None and count > 0,
        "histogram": [
            {"le_seconds": DURATION_BOUNDS[i] if i < len(DURATION_BOUNDS) else None, "count": n}
            for i, n in enumerate(histogram)
        ],
    }


def distribution(task_name: str, now: datetime | None = None) -> dict[str, Any]:
    """Counts, histogram and p50/p95/p99 of ``task_name`` over the last 24 hours and 7 days
    (whole hours, the current one included), and its p95 for each of the last 7 UTC days."""
    now = now or utcnow()
    first_day = now.date() - timedelta(days=TREND_DAYS - 1)
    day_start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    starts = {label: window_start(hours) for label, hours in WINDOWS}
    start = min(day_start, *starts.values())
    hours = _hours(task_name, start)
    read = _durations(task_name, start, int(sum(h.sums["duration_count"] for h in hours)))

    def part(since: datetime, until: datetime | None = None) -> dict[str, Any]:
        inside = [h for h in hours if h.hour >= since and (until is None or h.hour < until)]
        seconds = (
            None
            if read is None
            else [s for c, s in read if c >= since and (until is None or c < until)]
        )
        return _summary(inside, seconds)

    windows = [
        {"window": label, "hours": length, "start": starts[label], **part(starts[label])}
        for label, length in WINDOWS
    ]
    trend = []
    for offset in range(TREND_DAYS):
        day: date = first_day + timedelta(days=offset)
        since = day_start + timedelta(days=offset)
        summary = part(since, since + timedelta(days=1))
        trend.append(
            {
                "day": day,
                "duration_count": summary["duration_count"],
                "p95_seconds": summary["p95_seconds"],
                "estimate": summary["estimate"],
            }
        )
    return {"task_name": task_name, "windows": windows, "p95_by_day": trend}


def known(task_name: str) -> bool:
    """Whether ``task_name`` is a task of the catalogue or has executions: else a 404."""
    if len(task_name) > 255 or CONTROL.search(task_name):
        return False
    if any(t.name == task_name for ts in registered_tasks().values() for t in ts):
        return True
    query = select(TaskExecution.id).where(TaskExecution.task_name == task_name).limit(1)
    return db.session.scalar(query) is not None
