"""Maintenance tasks (``maintenance.tasks.*``): cleanup, pruning, log rotation, VACUUM/ANALYZE."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app

from app.extensions import db
from app.models import TaskStatus
from app.models.types import utcnow
from app.scheduler import backfill
from app.services import cleanup, maintenance
from app.tracking import deadletters, tracked


@tracked("maintenance", name="maintenance.tasks.cleanup_old_executions")
def cleanup_old_executions(
    days: int | None = None, statuses: list[str] | None = None, batch_size: int = 1000
) -> dict[str, Any]:
    """Delete executions older than ``days`` (default ``EXECUTION_RETENTION_DAYS``) in batches,
    each batch its own transaction (the service behind ``flask cleanup-old-executions``)."""
    days = current_app.config["EXECUTION_RETENTION_DAYS"] if days is None else days
    cutoff = utcnow() - timedelta(days=days)
    wanted = [TaskStatus(s) for s in statuses or []]
    deleted = 0
    while count := cleanup.delete_batch(cutoff, wanted, batch_size):
        db.session.commit()
        deleted += count
    return {"deleted": deleted, "cutoff": cutoff.isoformat()}


@tracked("maintenance", name="maintenance.tasks.prune_dead_letters_and_alerts")
def prune_dead_letters_and_alerts(alert_days: int | None = None) -> dict[str, Any]:
    """Drop dead letters beyond their age and count limits, and alerts older than ``alert_days``
    (default ``ALERT_RETENTION_DAYS``)."""
    alert_days = current_app.config["ALERT_RETENTION_DAYS"] if alert_days is None else alert_days
    letters = deadletters.prune()
    alerts = maintenance.prune_alerts(alert_days)
    db.session.commit()
    return {"dead_letters": letters, "alerts": alerts}


@tracked("maintenance", name="maintenance.tasks.rotate_logs")
def rotate_logs() -> dict[str, Any]:
    """Rotate the engine's ``*.log`` files in ``LOG_DIR`` larger than ``LOG_MAX_BYTES``."""
    config = current_app.config
    return maintenance.rotate_logs(
        Path(config["LOG_DIR"]), config["LOG_MAX_BYTES"], config["LOG_BACKUPS"]
    )


@tracked("maintenance", name="maintenance.tasks.optimize_database")
def optimize_database() -> dict[str, Any]:
    """VACUUM (ANALYZE) on PostgreSQL; ANALYZE on SQLite."""
    db.session.commit()  # VACUUM runs on its own connection, outside any transaction
    return maintenance.optimize_database()


@tracked("maintenance", name="maintenance.tasks.send_backfill")
def send_backfill(schedule_id: int, task_ids: list[str]) -> dict[str, Any]:
    """Send the claimed backfill runs ``task_ids`` of a schedule, oldest first, at most
    ``BACKFILL_PER_SECOND`` a second. Each is marked sent (committed) before it is published,
    so a redelivered task never sends one twice."""
    pause = 1.0 / max(float(current_app.config.get("BACKFILL_PER_SECOND", 5.0)), 0.01)
    celery = current_app.extensions["celery"]
    sent = failed = 0
    for task_id in task_ids:
        if sent + failed:
            time.sleep(pause)
        run = backfill.take_pending(schedule_id, task_id)
        db.session.commit()
        if run is None:
            continue
        backfill.send_claimed(celery, run)
        db.session.commit()
        sent, failed = (sent + 1, failed) if run.error is None else (sent, failed + 1)
    return {"schedule_id": schedule_id, "sent": sent, "failed": failed}
