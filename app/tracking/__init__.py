"""Execution tracking: Celery signals -> per-process buffer -> Redis stream -> recorder -> SQL.

See ARCHITECTURE.md, "Execution tracking". Public helpers: ``tracked`` (declare a task's type),
``create_task_execution`` / ``update_task_execution`` (add data from inside a task).
"""

from __future__ import annotations

from flask import Flask

from app.tracking.helpers import ExecutionRef, create_task_execution, update_task_execution
from app.tracking.policies import DataValidationError, TransientNetworkError, tracked

__all__ = [
    "DataValidationError",
    "ExecutionRef",
    "TransientNetworkError",
    "create_task_execution",
    "init_app",
    "tracked",
    "update_task_execution",
]


def init_app(app: Flask) -> None:
    """Route this process's Celery signals into the tracking stream."""
    from app.tracking import heartbeats, signals, tasks  # noqa: F401  (tasks registers notify_alert)
    from app.tracking.emitter import Emitter

    tracker = signals.Tracker(
        emitter=Emitter(
            app.config["REDIS_URL"], confirm_timeout=app.config["TRACKING_CONFIRM_TIMEOUT"]
        ),
        enabled=app.config["TRACKING_ENABLED"],
    )
    signals.activate(tracker)
    heartbeats.connect()
    app.extensions["tracking"] = tracker
