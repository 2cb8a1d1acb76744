"""Monitoring tasks (``task_monitoring.tasks.*``): health, daily statistics, failure rates,
queue depth snapshots."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import current_app

from app.extensions import db, own_redis
from app.models.types import utcnow
from app.monitoring import failure_rates, health, queue_history
from app.services import statistics
from app.tracking import tracked
from app.tracking.alerts import raise_alert


def _commit_and_notify(alert_ids: list[int]) -> None:
    from app.tracking.alerts import dispatch_notifications

    db.session.commit()
    dispatch_notifications(alert_ids)


@tracked("monitoring", name="task_monitoring.tasks.health_check")
def health_check() -> dict[str, Any]:
    """Check Redis, database, queues, workers, beat and recorder; alert when unhealthy."""
    result = health.health()
    if not result["healthy"]:
        alert = raise_alert(
            "health",
            f"System unhealthy: {', '.join(result['failing'])}",
            "\n".join(f"{n}: {result['checks'][n]}" for n in result["failing"]),
            severity="critical",
        )
        result["alert_id"] = alert.id if alert else None
        _commit_and_notify([alert.id] if alert else [])
    return result


@tracked("aggregation", name="task_monitoring.tasks.aggregate_daily_statistics")
def aggregate_daily_statistics(day: str | None = None) -> dict[str, Any]:
    """The previous UTC day's (or ``day``'s, ISO date) figures per task type and name, from the
    hourly roll-ups; they are this execution's result, shown on its page and by the API."""
    return statistics.daily(date.fromisoformat(day) if day else (utcnow() - timedelta(1)).date())


@tracked("monitoring", name="task_monitoring.tasks.check_failure_rates")
def check_failure_rates(
    threshold: float | None = None, window_hours: int | None = None, max_depth: int | None = None
) -> dict[str, Any]:
    """Alert when a task type's failure rate or a queue's depth crosses its threshold."""
    result = failure_rates.check(threshold, window_hours, max_depth)
    _commit_and_notify(result["alert_ids"])
    return result


@tracked("monitoring", name="task_monitoring.tasks.snapshot_queues")
def snapshot_queues(keep_days: int | None = None) -> dict[str, Any]:
    """Record every queue's depth and latency, and drop snapshots older than ``keep_days``
    (default ``QUEUE_SNAPSHOT_RETENTION_DAYS``): the queues page draws its trend from them."""
    config = current_app.config
    keep_days = config["QUEUE_SNAPSHOT_RETENTION_DAYS"] if keep_days is None else keep_days
    client = own_redis(config["REDIS_URL"])
    try:
        rows = queue_history.take_snapshots(client)
    finally:
        client.close()
    pruned = queue_history.prune_snapshots(utcnow() - timedelta(days=keep_days))
    db.session.commit()
    return {"depths": {row.queue: row.depth for row in rows}, "pruned": pruned}
