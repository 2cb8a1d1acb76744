"""Executions left ``started`` by a worker that is gone are flagged lost-suspect, instead of
showing as running forever (Flower's stuck tasks)."""

from __future__ import annotations

from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.models import TaskExecution, TaskStatus
from app.models.types import utcnow
from app.tracking.heartbeats import heartbeat_key


def flag_orphans(client: redis.Redis, grace_seconds: float = 60.0) -> int:
    """Flag started executions whose worker's heartbeat expired, or that outlived the
    visibility timeout (Redis will have redelivered them); return how many were flagged."""
    now = utcnow()
    visibility = current_app.extensions["celery"].conf.broker_transport_options.get(
        "visibility_timeout", 3600
    )
    running = db.session.execute(
        select(TaskExecution.id, TaskExecution.worker, TaskExecution.started_at).where(
            TaskExecution.status == TaskStatus.STARTED,
            TaskExecution.lost_suspect.is_(False),
            TaskExecution.started_at < now - timedelta(seconds=grace_seconds),
        )
    ).all()
    if not running:
        return 0
    workers = sorted({worker for _, worker, _ in running if worker})
    beats = client.mget([heartbeat_key(w) for w in workers]) if workers else []
    alive = dict(zip(workers, beats, strict=True))
    lost = [
        execution_id
        for execution_id, worker, started_at in running
        if not worker
        or alive.get(worker) is None
        or started_at < now - timedelta(seconds=visibility)
    ]
    if lost:
        db.session.execute(
            update(TaskExecution).where(TaskExecution.id.in_(lost)).values(lost_suspect=True)
        )
    return len(lost)
