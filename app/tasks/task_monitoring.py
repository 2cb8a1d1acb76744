"""Monitoring tasks named by the predefined schedules (``task_monitoring.tasks.*``)."""

from __future__ import annotations

from typing import Any

from app.services import monitoring
from app.tracking import tracked


@tracked("monitoring", name="task_monitoring.tasks.health_check")
def health_check() -> dict[str, Any]:
    """Check Redis and the database; return the result."""
    return monitoring.health()


@tracked("aggregation", name="task_monitoring.tasks.aggregate_daily_statistics")
def aggregate_daily_statistics(day: str | None = None) -> dict[str, Any]:
    """Count the previous UTC day's executions (or ``day``, ISO date) by task name and status."""
    from datetime import date

    return monitoring.daily_statistics(date.fromisoformat(day) if day else None)
