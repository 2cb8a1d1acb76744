"""Maintenance tasks (``maintenance.tasks.*``): cleanup, pruning, log rotation, VACUUM/ANALYZE."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.models import TaskStatus
from app.models.types import utcnow
from app.scheduler import backfill
from app.tracking import alerts, deadletters, retention, tracked


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
    while count := retention.delete_batch(cutoff, wanted, batch_size):
        db.session.commit()
        deleted += count
    return {"deleted": deleted, "cutoff": cutoff.isoformat()}


@tracked("maintenance", name="maintenance.tasks.prune_dead_letters_and_alerts")
def prune_dead_letters_and_alerts(alert_days: int | None = None) -> dict[str, Any]:
    """Drop dead letters beyond their age and count limits, and alerts older than ``alert_days``
    (default ``ALERT_RETENTION_DAYS``)."""
    alert_days = current_app.config["ALERT_RETENTION_DAYS"] if alert_days is None else alert_days
    letters = deadletters.prune()
    pruned = alerts.prune(alert_days)
    db.session.commit()
    return {"dead_letters": letters, "alerts": pruned}


@tracked("maintenance", name="maintenance.tasks.rotate_logs")
def rotate_logs() -> dict[str, Any]:
    """Rotate the engine's ``*.log`` files in ``LOG_DIR`` larger than ``LOG_MAX_BYTES``."""
    config = current_app.config
    return _rotate(Path(config["LOG_DIR"]), config["LOG_MAX_BYTES"], config["LOG_BACKUPS"])


@tracked("maintenance", name="maintenance.tasks.optimize_database")
def optimize_database() -> dict[str, Any]:
    """VACUUM (ANALYZE) on PostgreSQL; ANALYZE on SQLite."""
    db.session.commit()  # VACUUM runs on its own connection, outside any transaction
    return _optimize()


def _rotate(directory: Path, max_bytes: int, backups: int) -> dict[str, Any]:
    """Rotate every ``*.log`` in ``directory`` larger than ``max_bytes``: ``x.log`` -> ``x.log.1``
    (older copies shift up, at most ``backups`` kept), then the original is truncated in place.

    Copy-and-truncate, not rename: the processes writing the file keep their open handle and go
    on appending to the (now empty) file, without any signal to reopen it.
    """
    if not directory.is_dir():
        return {"directory": str(directory), "rotated": [], "exists": False}
    rotated = []
    for log in sorted(directory.glob("*.log")):
        if log.stat().st_size <= max_bytes:
            continue
        for number in range(backups - 1, 0, -1):
            older = log.with_name(f"{log.name}.{number}")
            if older.exists():
                older.replace(log.with_name(f"{log.name}.{number + 1}"))
        if backups > 0:
            shutil.copyfile(log, log.with_name(f"{log.name}.1"))
        with log.open("r+b") as handle:
            handle.truncate(0)
        rotated.append(log.name)
    return {"directory": str(directory), "rotated": rotated, "exists": True}


def _optimize() -> dict[str, Any]:
    """PostgreSQL: ``VACUUM (ANALYZE)`` of the whole database (outside a transaction, as VACUUM
    requires). SQLite: ``ANALYZE`` and ``PRAGMA optimize`` (a full VACUUM rewrites the file and
    locks out the recorder, so it is left to a maintenance window)."""
    dialect = db.engine.dialect.name
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if dialect == "postgresql":
            connection.execute(text("VACUUM (ANALYZE)"))
            done = ["VACUUM (ANALYZE)"]
        else:
            connection.execute(text("ANALYZE"))
            connection.execute(text("PRAGMA optimize"))
            done = ["ANALYZE", "PRAGMA optimize"]
    return {"dialect": dialect, "done": done}


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
