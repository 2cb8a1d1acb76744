"""The system health check: Redis, database, queues, workers, beat, watch and recorder.

The one place that decides whether each part is ok, used by the dashboard's health panel, the
API's ``/tasks/api/health/`` (and so load balancers), and the ``health_check`` task. Each check
says ``ok``, how long it took, and its details; a check that raises is a finding (``ok`` false
with the error), never an exception. The checks that read Redis run only when Redis answers, so a
Redis that hangs costs one timeout, not one per check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from flask import current_app
from sqlalchemy import text

from app.extensions import db, redis_client
from app.models.types import utcnow
from app.monitoring.queues import queue_depths, queue_stats

# Without these two nothing is served: the API answers 503 (a load balancer takes the node out).
SERVING = ("redis", "database")


def _timed(check: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check() or {}
    except Exception as error:  # any failure is a finding, never a 500
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:500]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2), **detail}


def _database() -> None:
    db.session.execute(text("SELECT 1"))


def _queues(client: redis.Redis, with_ages: bool) -> dict[str, Any]:
    """Depths, and those over ``QUEUE_DEPTH_THRESHOLD``; with the database, each queue's oldest
    message age too (read from the executions)."""
    if with_ages:
        items = queue_stats(client)
        depths = {item["name"]: item["depth"] for item in items}
    else:
        depths = queue_depths(client)
        items = [{"name": q, "depth": n, "oldest_age_seconds": None} for q, n in depths.items()]
    limit = current_app.config["QUEUE_DEPTH_THRESHOLD"]
    deep = {q: n for q, n in depths.items() if n > limit}
    return {"ok": not deep, "items": items, "depths": depths, "over_threshold": deep}


def _workers(client: redis.Redis, depths: dict[str, int]) -> dict[str, Any]:
    """Ok when a worker is alive and every queue with waiting messages has a consumer."""
    from app.tracking.heartbeats import live_workers

    workers = live_workers(client)
    consumed = {q for w in workers for q in w.get("queues") or []}
    unserved = sorted(q for q, n in depths.items() if n and q not in consumed)
    return {
        "ok": bool(workers) and not unserved,
        "count": len(workers),
        "names": sorted(w["hostname"] for w in workers),
        "live": workers,
        "queues_without_worker": unserved,
    }


def _beat() -> dict[str, Any]:
    """Ok only when a beat leads over a complete projection (an emptied one sends nothing) and
    no schedule is late."""
    from app.scheduler.store import get_store, projection_state
    from app.watch.health import late_schedules

    store = get_store()
    pipe = store.client.pipeline(transaction=False)
    pipe.get(store.key("lock"))
    pipe.pttl(store.key("lock"))
    holder, ttl_ms = pipe.execute()
    lock_ms = current_app.config["SCHEDULER_LOCK_TTL"] * 1000
    # The leader renews the lock's TTL on every tick: the time since the last renewal is how
    # long ago beat last ticked.
    ago = round(max(lock_ms - ttl_ms, 0) / 1000, 3) if holder and ttl_ms > 0 else None
    projection = projection_state(store)
    late = late_schedules()
    return {
        "ok": holder is not None and projection["complete"] and not late,
        "active": holder is not None,
        "lock_holder": holder.decode() if holder else None,
        "last_tick_seconds_ago": ago,
        "projection": projection,
        "late_schedules": late,
    }


def checks(client: redis.Redis | None = None, queue_ages: bool = True) -> dict[str, dict[str, Any]]:
    """Every check by name (each with ``ok`` and, unless it raised, ``latency_ms``). Without
    ``queue_ages`` the queues' oldest message ages (read from the executions) are left out."""
    from app.tracking.stream import recorder_check
    from app.watch.health import watcher_check

    client = redis_client() if client is None else client
    found: dict[str, dict[str, Any]] = {
        "redis": _timed(lambda: {"ping": bool(client.ping())}),
        "database": _timed(_database),
    }
    if not found["database"]["ok"]:
        db.session.rollback()
    if found["redis"]["ok"]:
        found["queues"] = _timed(lambda: _queues(client, queue_ages and found["database"]["ok"]))
        depths = found["queues"].get("depths") or {}
        found["workers"] = _timed(lambda: _workers(client, depths))
        found["beat"] = _timed(_beat)
        found["recorder"] = _timed(lambda: recorder_check(client))
        found["watch"] = _timed(lambda: watcher_check(client))
    return found


def health(client: redis.Redis | None = None, queue_ages: bool = True) -> dict[str, Any]:
    """Every check; ``healthy`` only when all are ok, ``serving`` when Redis and the database
    answer (what the engine needs to serve pages and take sends), ``failing`` names the rest."""
    found = checks(client, queue_ages)
    failing = sorted(name for name, check in found.items() if not check["ok"])
    return {
        "healthy": not failing,
        "serving": all(found[name]["ok"] for name in SERVING),
        "failing": failing,
        "checks": found,
        "checked_at": utcnow(),
    }
