"""Maintenance: pruning old alerts, rotating the engine's log files, VACUUM/ANALYZE.

(Old executions are deleted by ``app.services.cleanup``, the same service as the CLI command;
dead letters are pruned by ``app.tracking.deadletters.prune``.)
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, text

from app.database import rowcount
from app.extensions import db
from app.models import Alert
from app.models.types import utcnow


def prune_alerts(max_age_days: int) -> int:
    """Delete alerts older than ``max_age_days``; returns how many. The caller commits."""
    cutoff = utcnow() - timedelta(days=max_age_days)
    return rowcount(db.session.execute(delete(Alert).where(Alert.created_at < cutoff)))


def rotate_logs(directory: Path, max_bytes: int, backups: int) -> dict[str, Any]:
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


def optimize_database() -> dict[str, Any]:
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
