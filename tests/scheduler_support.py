"""Helpers for scheduler tests: reading the messages beat left in the Redis queue lists."""

from __future__ import annotations

import json
from typing import Any

import redis


def queued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """Every Celery message waiting in a queue list (the broker is the test Redis database)."""
    from celeryconfig import TASK_QUEUES

    messages = []
    for key in client.keys("*"):
        name = key.decode()
        base = name.split("\x06\x16")[0]  # kombu's priority-suffixed lists
        if base in TASK_QUEUES and client.type(key) == b"list":
            messages.extend(json.loads(raw) for raw in client.lrange(key, 0, -1))
    return messages


def scheduled_headers(client: redis.Redis) -> list[dict[str, Any]]:
    """Headers of the queued messages that carry a schedule id."""
    return [m["headers"] for m in queued_messages(client) if "ewas_schedule_id" in m["headers"]]
