"""The broker as the engine reads it: queue depths, the age of each queue's oldest message, and
which task ids Redis still holds (queued or reserved by a worker). No worker round trip.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from sqlalchemy import select

from app.extensions import db
from app.models import TaskExecution

# kombu's Redis transport keeps priority levels in lists named ``<queue>\x06\x16<priority>``,
# and messages a worker has reserved but not acknowledged in the ``unacked`` hash.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
UNACKED = "unacked"


def queue_names() -> list[str]:
    from celeryconfig import TASK_QUEUES

    return list(TASK_QUEUES)


def queue_keys(name: str) -> list[str]:
    """The Redis lists holding ``name``'s messages, one per priority level."""
    return [name, *(f"{name}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)]


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each of the engine's queues."""
    names = queue_names()
    pipe = client.pipeline(transaction=False)
    for name in names:
        for key in queue_keys(name):
            pipe.llen(key)
    lengths = pipe.execute()
    step = len(PRIORITY_STEPS) + 1
    return {name: sum(lengths[i * step : (i + 1) * step]) for i, name in enumerate(names)}


def queue_stats(client: redis.Redis) -> list[dict[str, Any]]:
    """Each queue's depth (all priority lists) and the age in seconds of its oldest message.

    kombu pushes on the left and workers pop from the right, so a list's oldest message is at
    index -1. Its age is taken from the execution row its tracked ``pending`` event created.
    """
    names = queue_names()
    pipe = client.pipeline(transaction=False)
    for name in names:
        for key in queue_keys(name):
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
            task_id = message_task_id(message)
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


def held_by_broker(
    client: redis.Redis, task_ids: list[str], extra_queues: list[str] | None = None
) -> set[str]:
    """Which of ``task_ids`` the broker still holds, queued or reserved by a worker.

    ``extra_queues``: queues outside the configuration the messages may have been sent to. A
    full scan of every queue and of the reserved messages: meant for rare checks (a crashed
    beat's unconfirmed sends, the lost-message scan), never for a hot path.
    """
    if not task_ids:
        return set()
    wanted = set(task_ids)
    pipe = client.pipeline(transaction=False)
    for name in sorted(set(queue_names()) | set(extra_queues or ())):
        for key in queue_keys(name):
            pipe.lrange(key, 0, -1)
    pipe.hvals(UNACKED)
    held = {message_task_id(message) for messages in pipe.execute() for message in messages}
    return wanted & held


def already_published(client: redis.Redis, task_ids: list[str]) -> set[str]:
    """Which of ``task_ids`` the broker holds or the database has recorded."""
    if not task_ids:
        return set()
    found = held_by_broker(client, task_ids)
    found.update(
        db.session.scalars(select(TaskExecution.task_id).where(TaskExecution.task_id.in_(task_ids)))
    )
    return found


def message_task_id(message: bytes | None) -> str | None:
    """The task id of a queued message, or of a reserved one (kombu keeps those in its unacked
    hash as ``[message, exchange, routing_key]``)."""
    if not message:
        return None
    try:
        payload = json.loads(message)
    except ValueError:
        return None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    headers = payload.get("headers")
    return str((headers if isinstance(headers, dict) else {}).get("id") or "") or None
