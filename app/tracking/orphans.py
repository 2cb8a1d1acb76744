"""Executions that will never end are flagged lost-suspect, instead of showing as running or
queued forever (Flower's stuck tasks): ``started`` ones whose worker is gone, and ``pending`` ones
whose message the broker no longer holds (a Redis restart without persistence, a flush, an
eviction, a failover to a replica that had not received it)."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import insert, select, update

from app.extensions import db
from app.models import Alert, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.monitoring.queues import held_by_broker
from app.tracking.emitter import STREAM
from app.tracking.heartbeats import heartbeat_key

# Pending executions found missing from the broker by one scan, with when: flagged by a later
# scan only if still pending and every tracking event older than that scan has been recorded.
CANDIDATES_KEY = "ewas:lost-pending:candidates"
SCAN_LIMIT = 500


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
        or (started_at is not None and started_at < now - timedelta(seconds=visibility))
    ]
    if lost:
        db.session.execute(
            update(TaskExecution).where(TaskExecution.id.in_(lost)).values(lost_suspect=True)
        )
    return len(lost)


def recorded_until(client: redis.Redis, group: str) -> float:
    """Epoch seconds before which every tracking event has been recorded (0: unknown).

    The oldest entry still pending in ``group`` or not yet delivered to it bounds what the
    recorders have applied: a started event for a message that left the broker earlier may
    still be waiting there, and the execution must not be called lost meanwhile.
    """
    try:
        groups = client.xinfo_groups(STREAM)
    except redis.ResponseError:  # no stream: no recorder has started since Redis was emptied
        return 0.0
    info = next((g for g in groups if _text(g.get("name")) == group), None)
    if info is None:
        return 0.0
    bounds = []
    if int(info.get("pending") or 0):
        summary = client.xpending(STREAM, group)
        if summary.get("min"):
            bounds.append(_entry_seconds(summary["min"]))
    last = _text(info.get("last-delivered-id")) or "0-0"
    undelivered = client.xrange(STREAM, min=f"({last}", count=1)
    if undelivered:
        bounds.append(_entry_seconds(undelivered[0][0]))
    return min(bounds) if bounds else time.time()


def flag_lost_pending(client: redis.Redis, after_seconds: float, group: str) -> list[int]:
    """Flag ``pending`` executions older than ``after_seconds`` whose message no queue and no
    worker holds; returns the ids of the alerts raised for them (uncommitted).

    Two scans are needed: the first notes what is missing, a later one flags what is still
    pending and missing once the recorders have caught up past the first (so a task picked up
    just before the scan, whose started event is on its way, is never called lost). Its next
    event (it ran after all) clears the flag.
    """
    now = utcnow()
    rows = db.session.execute(
        select(TaskExecution.task_id, TaskExecution.queue, TaskExecution.task_name)
        .where(
            TaskExecution.status == TaskStatus.PENDING,
            TaskExecution.lost_suspect.is_(False),
            TaskExecution.created_at < now - timedelta(seconds=after_seconds),
        )
        .order_by(TaskExecution.created_at)
        .limit(SCAN_LIMIT)
    ).all()
    noted = {_text(k): float(v) for k, v in client.hgetall(CANDIDATES_KEY).items()}
    scanned_at = time.time()
    extra = sorted({queue for _, queue, _ in rows if queue})
    missing = {task_id for task_id, _, _ in rows} - held_by_broker(
        client, [task_id for task_id, _, _ in rows], extra_queues=extra
    )
    caught_up = recorded_until(client, group)
    lost = {task_id for task_id in missing if task_id in noted and caught_up > noted[task_id]}
    pipe = client.pipeline()
    pipe.delete(CANDIDATES_KEY)
    waiting: dict[str | bytes, float] = {
        task_id: noted.get(task_id, scanned_at) for task_id in missing - lost
    }
    if waiting:
        pipe.hset(CANDIDATES_KEY, mapping=waiting)
        pipe.expire(CANDIDATES_KEY, 86400)
    pipe.execute()
    if not lost:
        return []
    flagged = db.session.execute(
        update(TaskExecution)
        .where(
            TaskExecution.task_id.in_(lost),
            TaskExecution.status == TaskStatus.PENDING,
            TaskExecution.lost_suspect.is_(False),
        )
        .values(lost_suspect=True)
        .returning(TaskExecution.task_id)
    ).scalars()
    names = {task_id: name for task_id, _, name in rows}
    values = [
        {
            "created_at": now,
            "kind": "lost_execution",
            "severity": "error",
            "title": f"Execution lost: its message is no longer in the broker: {names[t]}"[:255],
            "message": f"Queued for more than {after_seconds:g} s; no queue or worker holds it.",
            "task_id": t,
            "task_name": names[t],
        }
        for t in flagged
    ]
    if not values:
        return []
    return list(db.session.scalars(insert(Alert).returning(Alert.id), values))


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _entry_seconds(entry_id: bytes | str) -> float:
    return int(_text(entry_id).split("-", 1)[0]) / 1000
