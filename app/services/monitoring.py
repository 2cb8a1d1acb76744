"""System health and daily statistics, used by the monitoring tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import TaskExecution
from app.models.types import utcnow


def health() -> dict[str, Any]:
    """Check that Redis and the database answer; ``healthy`` only when both do."""
    checks: dict[str, Any] = {}
    try:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=5)
        checks["redis"] = {"ok": bool(client.ping())}
        client.close()
    except redis.RedisError as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:
        db.session.rollback()
        checks["database"] = {"ok": False, "error": str(exc)}
    return {
        "healthy": all(c["ok"] for c in checks.values()),
        "checks": checks,
        "checked_at": utcnow().isoformat(),
    }


def daily_statistics(day: date | None = None) -> dict[str, Any]:
    """Executions created on ``day`` (default: yesterday, UTC), counted by task name and status."""
    day = day or (utcnow() - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    rows = db.session.execute(
        select(TaskExecution.task_name, TaskExecution.status, func.count())
        .where(TaskExecution.created_at >= start, TaskExecution.created_at < end)
        .group_by(TaskExecution.task_name, TaskExecution.status)
    )
    counts: dict[str, dict[str, int]] = {}
    total = 0
    for name, status, count in rows:
        counts.setdefault(name or "", {})[str(status)] = count
        total += count
    return {"day": day.isoformat(), "total": total, "by_task": counts}
