"""Worker heartbeats in Redis: health pages and orphan detection never need a broadcast
``inspect`` round trip (Flower's slow path)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery import signals

log = logging.getLogger(__name__)

KEY = "ewas:worker:{}"
INDEX = "ewas:workers"
INTERVAL = 10.0
TTL = 30

_stop = threading.Event()


def heartbeat_key(hostname: str) -> str:
    return KEY.format(hostname)


def _describe(consumer: Any) -> dict[str, Any]:
    from celery.worker import state

    queues = [queue.name for queue in getattr(consumer.task_consumer, "queues", [])]
    pool = getattr(consumer, "pool", None)
    return {
        "hostname": consumer.hostname,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "concurrency": getattr(pool, "num_processes", None) or getattr(pool, "limit", None),
        "active": len(state.active_requests),
        "last_seen": time.time(),
    }


def beat_once(client: redis.Redis, info: dict[str, Any]) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(heartbeat_key(info["hostname"]), json.dumps(info), ex=TTL)
    pipe.zadd(INDEX, {info["hostname"]: info["last_seen"]})
    pipe.execute()


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    consumer = sender
    client = redis.Redis.from_url(consumer.app.conf.broker_url, socket_timeout=5)
    _stop.clear()

    def run() -> None:
        while True:
            try:
                beat_once(client, _describe(consumer))
            except Exception as error:  # a heartbeat failure must never stop the worker
                log.warning("heartbeat failed: %s", error)
            if _stop.wait(INTERVAL):
                return

    threading.Thread(target=run, name="ewas-heartbeat", daemon=True).start()


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    app = getattr(sender, "app", None)
    if not hostname or app is None:
        return
    try:
        client = redis.Redis.from_url(app.conf.broker_url, socket_timeout=5)
        client.delete(heartbeat_key(hostname))
        client.zrem(INDEX, hostname)
    except redis.RedisError:
        pass


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """Workers whose heartbeat has not expired, with what they last reported."""
    names = [n.decode() if isinstance(n, bytes) else n for n in client.zrange(INDEX, 0, -1)]
    if not names:
        return []
    values = client.mget([heartbeat_key(name) for name in names])
    gone = [name for name, value in zip(names, values, strict=True) if value is None]
    if gone:
        client.zrem(INDEX, *gone)
    return [json.loads(value) for value in values if value is not None]


def connect() -> None:
    if not getattr(connect, "done", False):
        signals.worker_ready.connect(on_worker_ready, weak=False)
        signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
        connect.done = True  # type: ignore[attr-defined]
