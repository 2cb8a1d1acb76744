"""Alerts when a task type fails too often or a queue grows too deep (configurable thresholds)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db, own_redis
from app.models import TaskExecution, TaskStatus, TaskType
from app.models.types import utcnow
from app.monitoring.queues import queue_depths
from app.tracking.alerts import raise_alert

# A task type name, or None for executions without a type.
Name = TypeVar("Name", str, str | None)


def type_failure_rates(window_hours: int) -> dict[str, dict[str, Any]]:
    """Per task type: finished executions (success or failure) completed in the window, and the
    share that failed."""
    since = utcnow() - timedelta(hours=window_hours)
    rows = db.session.execute(
        select(TaskType.name, TaskExecution.status, func.count())
        .join(TaskType, TaskType.id == TaskExecution.task_type_id)
        .where(
            TaskExecution.completed_at >= since,
            TaskExecution.status.in_([TaskStatus.SUCCESS, TaskStatus.FAILURE]),
        )
        .group_by(TaskType.name, TaskExecution.status)
    )
    rates: dict[str, dict[str, Any]] = {}
    for name, status, count in rows:
        entry = rates.setdefault(name, {"finished": 0, "failed": 0})
        entry["finished"] += count
        if status == TaskStatus.FAILURE:
            entry["failed"] += count
    for entry in rates.values():
        entry["rate"] = entry["failed"] / entry["finished"]
    return rates


def judge(
    counts: Mapping[Name, tuple[int, int]], threshold: float, minimum: int
) -> dict[str, list[dict[str, Any]]]:
    """Task types (name -> (failed, finished)) split into ``warnings``: failing more than
    ``threshold`` of at least ``minimum`` executions, and ``too_few``: finished executions but
    fewer than ``minimum``, so nobody reads "no type failed" beside a type at 0% success.

    The one rule for alerts and for the dashboard's error-rate panel; both sorted by name.
    """
    judged: dict[str, list[dict[str, Any]]] = {"warnings": [], "too_few": []}
    for name, (failed, finished) in sorted(counts.items(), key=lambda item: item[0] or ""):
        if not finished:
            continue
        rate = failed / finished
        entry = {"task_type": name, "failed": failed, "finished": finished, "rate": rate}
        if finished < minimum:
            judged["too_few"].append(entry)
        elif rate > threshold:
            judged["warnings"].append(entry)
    return judged


def check(
    threshold: float | None = None, window_hours: int | None = None, max_depth: int | None = None
) -> dict[str, Any]:
    """Raise an alert per task type over the failure-rate threshold (with enough executions to
    judge) and per queue deeper than the threshold. The caller commits and dispatches."""
    config = current_app.config
    threshold = config["FAILURE_RATE_THRESHOLD"] if threshold is None else threshold
    window_hours = window_hours or config["FAILURE_RATE_WINDOW_HOURS"]
    max_depth = config["QUEUE_DEPTH_THRESHOLD"] if max_depth is None else max_depth
    minimum = config["FAILURE_RATE_MIN_EXECUTIONS"]
    alerts = []
    rates = type_failure_rates(window_hours)
    judged = judge(
        {name: (e["failed"], e["finished"]) for name, e in rates.items()}, threshold, minimum
    )
    over = {warning["task_type"] for warning in judged["warnings"]}
    for name, entry in sorted(rates.items()):
        entry["over_threshold"] = name in over
        if entry["over_threshold"]:
            alerts.append(
                raise_alert(
                    "failure_rate",
                    f"Failure rate of {name} tasks is {entry['rate']:.0%}",
                    f"{entry['failed']} of {entry['finished']} {name} executions failed in the "
                    f"last {window_hours} h (threshold {threshold:.0%}).",
                )
            )
    client = own_redis(config["REDIS_URL"])
    try:
        depths = queue_depths(client)
    finally:
        client.close()
    for queue, depth in sorted(depths.items()):
        if depth > max_depth:
            alerts.append(
                raise_alert(
                    "queue_depth",
                    f"Queue {queue} holds {depth} messages",
                    f"Queue {queue} holds {depth} waiting messages (threshold {max_depth}).",
                )
            )
    return {
        "window_hours": window_hours,
        "threshold": threshold,
        "types": rates,
        "queue_depths": depths,
        "alert_ids": [a.id for a in alerts if a is not None],
    }
