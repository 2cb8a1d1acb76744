"""Worker heartbeats in Redis: health pages and orphan detection never need a broadcast
``inspect`` round trip (Flower's slow path).

A live heartbeat key expires after ``TTL_BEATS`` missed beats. Beside it each worker keeps a
"last known" record for a day, so pages can still show a worker that stopped (cleanly, with
``stopped_at``) or was lost (its heartbeat expired without a shutdown).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery import signals

from app.extensions import own_redis
from app.outages import Outage

log = logging.getLogger(__name__)

KEY = "ewas:worker:{}"
LAST_KEY = "ewas:worker:last:{}"
INDEX = "ewas:workers"
SEEN = "ewas:workers:seen"
INTERVAL = 10.0  # seconds; WORKER_HEARTBEAT_INTERVAL overrides it
TTL_BEATS = 3
STALE_BEATS = 2
RETAIN_SECONDS = 24 * 3600
MAX_ACTIVE_LISTED = 20
MAX_KNOWN = 200

_stop = threading.Event()


def heartbeat_key(hostname: str) -> str:
    return KEY.format(hostname)


def _active_tasks(requests: Any) -> list[dict[str, str]]:
    tasks = [{"id": str(r.id), "name": str(r.name)} for r in list(requests)]
    return sorted(tasks, key=lambda task: (task["name"], task["id"]))[:MAX_ACTIVE_LISTED]


def _describe(consumer: Any, interval: float) -> dict[str, Any]:
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
        "active_tasks": _active_tasks(state.active_requests),
        "interval": interval,
        "last_seen": time.time(),
    }


def beat_once(client: redis.Redis, info: dict[str, Any]) -> None:
    interval = float(info.get("interval") or INTERVAL)
    payload = json.dumps(info)
    pipe = client.pipeline(transaction=False)
    pipe.set(heartbeat_key(info["hostname"]), payload, ex=max(int(interval * TTL_BEATS), 1))
    pipe.zadd(INDEX, {info["hostname"]: info["last_seen"]})
    pipe.set(LAST_KEY.format(info["hostname"]), payload, ex=RETAIN_SECONDS)
    pipe.zadd(SEEN, {info["hostname"]: info["last_seen"]})
    pipe.execute()


def _interval(consumer: Any) -> float:
    flask_app = getattr(consumer.app, "flask_app", None)
    configured = flask_app.config.get("WORKER_HEARTBEAT_INTERVAL") if flask_app else None
    return float(configured or INTERVAL)


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    consumer = sender
    client = own_redis(consumer.app.conf.broker_url)
    interval = _interval(consumer)
    _stop.clear()

    outage = Outage("worker", "heartbeat (Redis)", logger=log, max_backoff=interval)

    def run() -> None:
        while True:
            try:
                beat_once(client, _describe(consumer, interval))
            except Exception as error:  # a heartbeat failure must never stop the worker
                outage.failed(error)
            else:
                outage.ok()
            if _stop.wait(interval):
                return

    threading.Thread(target=run, name="ewas-heartbeat", daemon=True).start()


def mark_stopped(client: redis.Redis, hostname: str, when: float | None = None) -> None:
    """Remove the live heartbeat and note on the last-known record that the worker stopped."""
    last_key = LAST_KEY.format(hostname)
    last = client.get(last_key)
    pipe = client.pipeline(transaction=False)
    pipe.delete(heartbeat_key(hostname))
    pipe.zrem(INDEX, hostname)
    if last is not None:
        info = {**json.loads(last), "stopped_at": when or time.time()}
        pipe.set(last_key, json.dumps(info), ex=RETAIN_SECONDS)
    pipe.execute()


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    app = getattr(sender, "app", None)
    if not hostname or app is None:
        return
    with contextlib.suppress(redis.RedisError):
        mark_stopped(own_redis(app.conf.broker_url), hostname)


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


def worker_state(info: dict[str, Any], live: bool, now: float) -> str:
    """``live``, ``stale`` (beats missed, heartbeat not yet expired), ``stopped`` or ``lost``."""
    if not live:
        return "stopped" if info.get("stopped_at") else "lost"
    interval = float(info.get("interval") or INTERVAL)
    return "stale" if now - float(info["last_seen"]) > interval * STALE_BEATS + 1 else "live"


def known_workers(client: redis.Redis, now: float | None = None) -> list[dict[str, Any]]:
    """Workers seen in the last day (the ``MAX_KNOWN`` most recent), live or not, each with its
    ``state``."""
    now = time.time() if now is None else now
    client.zremrangebyscore(SEEN, "-inf", now - RETAIN_SECONDS)
    recent = client.zrevrange(SEEN, 0, MAX_KNOWN - 1)
    names = [n.decode() if isinstance(n, bytes) else n for n in recent]
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.mget([heartbeat_key(name) for name in names])
    pipe.mget([LAST_KEY.format(name) for name in names])
    live_values, last_values = pipe.execute()
    workers = []
    for live, last in zip(live_values, last_values, strict=True):
        if live is None and last is None:
            continue
        info = json.loads(live if live is not None else last)
        workers.append({**info, "state": worker_state(info, live is not None, now)})
    return workers


def connect() -> None:
    if not getattr(connect, "done", False):
        signals.worker_ready.connect(on_worker_ready, weak=False)
        signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
        connect.done = True  # type: ignore[attr-defined]  # remembered on the function
