"""Hourly statistics roll-ups: counted when executions become final, read by the API."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import FINAL_STATUSES, TaskExecution, TaskType
from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS, ExecutionHourly

COUNTED = ("success", "failure", "revoked")
SUMMED = (*COUNTED, "duration_count", "duration_sum", *HISTOGRAM_COLUMNS)


def bucket_of(seconds: float) -> str:
    """The histogram column of a duration."""
    return HISTOGRAM_COLUMNS[bisect_left(DURATION_BOUNDS, seconds)]


def _hour(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count_finals(rows: Iterable[dict[str, Any]], type_names: dict[int, str], sign: int = 1) -> None:
    """Add executions that just became final to their hour's counters (caller commits).

    ``rows`` are execution rows as the recorder stores them; each must be passed once, in the
    transaction that stores its final status. ``sign=-1`` takes back what an earlier final
    state of the same executions added (a redelivered execution that ended again).
    """
    totals: dict[tuple[datetime, str, str], dict[str, Any]] = {}
    for row in rows:
        status = str(row.get("status"))
        if status not in COUNTED:
            continue
        when = row.get("completed_at") or row.get("updated_at") or row.get("created_at")
        if when is None:
            continue
        key = (
            _hour(when),
            type_names.get(row.get("task_type_id") or 0, ""),
            row.get("task_name") or "",
        )
        counters = totals.setdefault(key, dict.fromkeys(SUMMED, 0))
        counters[status] += sign
        started, completed = row.get("started_at"), row.get("completed_at")
        if started is not None and completed is not None:
            seconds = max((completed - started).total_seconds(), 0.0)
            counters["duration_count"] += sign
            counters["duration_sum"] += sign * seconds
            counters[bucket_of(seconds)] += sign
    if totals:
        add_counts(
            [
                {"hour": hour, "task_type": kind, "task_name": name, **counters}
                for (hour, kind, name), counters in totals.items()
            ]
        )


def add_counts(values: list[dict[str, Any]]) -> None:
    """Upsert counter rows, adding to the stored counters."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    table = ExecutionHourly.__table__
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["hour", "task_type", "task_name"],
        set_={c: table.c[c] + statement.excluded[c] for c in SUMMED},
    )
    db.session.execute(statement, values)


REBUILD_BATCH = 5000


def rebuild(since: datetime, lock: int | None = None) -> int:
    """Recount the hours from ``since`` (rounded down to its hour) from the executions themselves.

    Runs in the caller's transaction; on PostgreSQL it first takes the recorders' advisory
    ``lock`` so no batch adds to the counters while they are recounted. Returns how many final
    executions were counted.
    """
    if lock is not None and db.engine.dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(lock)))
    start = _hour(since)
    db.session.execute(delete(ExecutionHourly).where(ExecutionHourly.hour >= start))
    type_names = dict(db.session.execute(select(TaskType.id, TaskType.name)).all())
    table = TaskExecution.__table__
    columns = [table.c[c] for c in ("id", "status", "task_type_id", "task_name", "created_at",
                                    "updated_at", "started_at", "completed_at")]  # fmt: skip
    when = func.coalesce(table.c.completed_at, table.c.updated_at, table.c.created_at)
    final = [str(s) for s in FINAL_STATUSES]
    counted, last_id = 0, 0
    while True:
        rows = [
            {**row, "status": str(row["status"])}
            for row in db.session.execute(
                select(*columns)
                .where(table.c.id > last_id, table.c.status.in_(final), when >= start)
                .order_by(table.c.id)
                .limit(REBUILD_BATCH)
            ).mappings()
        ]
        if not rows:
            return counted
        count_finals(rows, type_names)
        counted += len(rows)
        last_id = rows[-1]["id"]
