"""Queue depth and latency read straight from the Redis broker (no broadcast ``inspect``)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from sqlalchemy import select

from app.extensions import db
from app.models import TaskExecution

# kombu's Redis transport keeps priority messages in extra lists named queue + SEP + priority.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


def queue_names() -> list[str]:
    from celeryconfig import TASK_QUEUES

    return list(TASK_QUEUES)


def _keys(name: str) -> list[str]:
    return [name, *(f"{name}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS)]


def queue_stats(client: redis.Redis) -> list[dict[str, Any]]:
    """Each queue's depth (all priority lists) and the age in seconds of its oldest message.

    kombu pushes on the left and workers pop from the right, so a list's oldest message is at
    index -1. Its age is taken from the execution row its tracked ``pending`` event created.
    """
    names = queue_names()
    pipe = client.pipeline(transaction=False)
    for name in names:
        for key in _keys(name):
            pipe.llen(key)
            pipe.lindex(key, -1)
    replies = pipe.execute()
    oldest_ids: dict[str, str] = {}
    depths: dict[str, int] = {}
    step = 2 * (len(PRIORITY_STEPS) + 1)
    for index, name in enumerate(names):
        chunk = replies[index * step : (index + 1) * step]
        depths[name] = sum(int(n or 0) for n in chunk[0::2])
        for message in chunk[1::2]:
            task_id = _task_id(message)
            if task_id:
                oldest_ids.setdefault(name, task_id)
    created = {}
    if oldest_ids:
        created = dict(
            db.session.execute(
                select(TaskExecution.task_id, TaskExecution.created_at).where(
                    TaskExecution.task_id.in_(list(oldest_ids.values()))
                )
            ).all()
        )
    now = time.time()
    result = []
    for name in names:
        when = created.get(oldest_ids.get(name, ""))
        age = round(max(now - when.timestamp(), 0.0), 3) if when else None
        result.append({"name": name, "depth": depths[name], "oldest_age_seconds": age})
    return result


def already_published(client: redis.Redis, task_ids: list[str]) -> set[str]:
    """Which of ``task_ids`` the broker already holds (queued or unacknowledged) or the database
    has recorded. A full scan, meant for the rare recovery of sends a crashed process left
    unconfirmed, never for a hot path."""
    if not task_ids:
        return set()
    wanted = {task_id.encode(): task_id for task_id in task_ids}
    pipe = client.pipeline(transaction=False)
    for name in queue_names():
        for key in _keys(name):
            pipe.lrange(key, 0, -1)
    pipe.hvals("unacked")
    found = set()
    for messages in pipe.execute():
        for message in messages:
            found.update(task_id for raw, task_id in wanted.items() if raw in message)
    found.update(
        db.session.scalars(select(TaskExecution.task_id).where(TaskExecution.task_id.in_(task_ids)))
    )
    return found


def _task_id(message: bytes | None) -> str | None:
    if not message:
        return None
    try:
        payload = json.loads(message)
        return str((payload.get("headers") or {}).get("id") or "") or None
    except (ValueError, AttributeError):
        return None
