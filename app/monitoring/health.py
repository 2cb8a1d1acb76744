"""The system health check: Redis, database, queues, workers, beat and recorder."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.models.types import utcnow
from app.monitoring.queues import queue_depths


def _check_database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True}
    except Exception as error:
        db.session.rollback()
        return {"ok": False, "error": str(error)}


def _check_redis_parts(client: redis.Redis) -> dict[str, Any]:
    """Every check that reads Redis; raises RedisError when Redis does not answer."""
    from app.scheduler.store import get_store, projection_state
    from app.tracking.heartbeats import live_workers
    from app.tracking.stream import recorder_check
    from app.watch.health import late_schedules, watcher_check

    config = current_app.config
    checks: dict[str, Any] = {"redis": {"ok": bool(client.ping())}}

    depths = queue_depths(client)
    limit = config["QUEUE_DEPTH_THRESHOLD"]
    deep = {q: n for q, n in depths.items() if n > limit}
    checks["queues"] = {"ok": not deep, "depths": depths, "over_threshold": deep}

    workers = live_workers(client)
    consumed = {q for w in workers for q in w.get("queues") or []}
    waiting_unserved = sorted(q for q, n in depths.items() if n and q not in consumed)
    checks["workers"] = {
        "ok": bool(workers) and not waiting_unserved,
        "count": len(workers),
        "names": sorted(w["hostname"] for w in workers),
        "queues_without_worker": waiting_unserved,
    }

    store = get_store()
    holder = store.client.get(store.key("lock"))
    projection = projection_state(store)
    late = late_schedules()
    # A leading beat over an emptied projection sends nothing: not healthy until rebuilt.
    checks["beat"] = {
        "ok": holder is not None and projection["complete"] and not late,
        "active": holder is not None,
        "projection": projection,
        "late_schedules": late,
    }
    checks["watch"] = watcher_check(client)

    checks["recorder"] = recorder_check(client)
    return checks


def health(client: redis.Redis | None = None) -> dict[str, Any]:
    """Every check with ``ok``; ``healthy`` only when all are ok. Pass ``client`` to reuse a
    connection pool (pages polled every 30 s); otherwise one is opened and closed."""
    checks: dict[str, Any] = {}
    own = client is None
    if client is None:
        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=5
        )
    try:
        checks.update(_check_redis_parts(client))
    except redis.RedisError as error:
        checks["redis"] = {"ok": False, "error": str(error)}
    finally:
        if own:
            client.close()
    checks["database"] = _check_database()
    failing = sorted(name for name, check in checks.items() if not check["ok"])
    return {
        "healthy": not failing,
        "failing": failing,
        "checks": checks,
        "checked_at": utcnow().isoformat(),
    }
