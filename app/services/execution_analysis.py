"""A summary of a selection of executions: counts by status, durations, most common errors."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from app.extensions import db
from app.models import TaskExecution
from app.monitoring.percentiles import nearest_rank

TOP_ERRORS = 5
ERROR_KEY_LENGTH = 200  # errors are grouped by their first line, cut to this length


@dataclass(frozen=True)
class Durations:
    count: int
    minimum: float
    average: float
    p95: float
    maximum: float


@dataclass(frozen=True)
class Analysis:
    requested: int
    found: int
    missing: list[str]
    by_status: list[tuple[str, int]]  # most frequent first
    by_task: list[tuple[str, int]]
    durations: Durations | None  # None when no selected execution has both start and end
    errors: list[tuple[str, int]] = field(default_factory=list)


def error_key(message: str) -> str:
    """The part of an error message that groups alike errors: its first line, cut."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return first[:ERROR_KEY_LENGTH]


def _canonical(task_id: str) -> str | None:
    """The stored form of a task id (a lowercase UUID), or None when it cannot be one."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        return None


def analyze(task_ids: Sequence[str]) -> Analysis:
    """Summarize the executions of ``task_ids`` (one IN query on the unique task id index)."""
    wanted = list(dict.fromkeys(task_ids))
    canonical = {task_id: _canonical(task_id) for task_id in wanted}
    rows = db.session.execute(
        select(
            TaskExecution.task_id,
            TaskExecution.status,
            TaskExecution.task_name,
            TaskExecution.started_at,
            TaskExecution.completed_at,
            TaskExecution.error_message,
        ).where(TaskExecution.task_id.in_([c for c in canonical.values() if c]))
    ).all()
    found = {row.task_id for row in rows}
    statuses = Counter(str(row.status) for row in rows)
    tasks = Counter(row.task_name or "?" for row in rows)
    errors = Counter(error_key(row.error_message) for row in rows if row.error_message)
    seconds = sorted(
        (row.completed_at - row.started_at).total_seconds()
        for row in rows
        if row.started_at is not None and row.completed_at is not None
    )
    p95 = nearest_rank(seconds, 0.95, ordered=True)  # None only when seconds is empty
    durations = (
        Durations(
            count=len(seconds),
            minimum=seconds[0],
            average=sum(seconds) / len(seconds),
            p95=p95,
            maximum=seconds[-1],
        )
        if seconds and p95 is not None
        else None
    )
    return Analysis(
        requested=len(wanted),
        found=len(rows),
        missing=[t for t in wanted if canonical[t] not in found],
        by_status=statuses.most_common(),
        by_task=tasks.most_common(10),
        durations=durations,
        errors=errors.most_common(TOP_ERRORS),
    )
