"""The Redis-stored beat scheduler: schedules in SQL, live state in Redis (README: Scheduler)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Let beat reach the Flask app (config, database) from the Celery app it is given."""
    from app.scheduler import service  # noqa: F401  (registers the write-through session hooks)

    app.extensions["celery"].flask_app = app
