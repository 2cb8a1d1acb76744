"""The watch's part of the health answer: is a watcher alive, and is any schedule late.

Shared by the health task (app.monitoring.health) and the API's health answer, so both say
the same thing.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import ScheduledTask
from app.models.types import utcnow
from app.watch.facts import watch
from app.watch.states import WatchState
from app.watch.watcher import heartbeat_age

MIN_STALE_AFTER = 60.0  # seconds without a check before the watch counts as down


def stale_after() -> float:
    return max(MIN_STALE_AFTER, 3 * float(current_app.config["WATCH_INTERVAL"]))


def watcher_check(client: redis.Redis) -> dict[str, Any]:
    """``ok`` when a watcher finished a check recently; raises RedisError when Redis is down."""
    age = heartbeat_age(client)
    return {
        "ok": age is not None and age <= stale_after(),
        "last_check_seconds_ago": None if age is None else round(age, 3),
        "stale_after_seconds": stale_after(),
    }


def late_schedules() -> list[str]:
    """Names of the enabled schedules that are late now (assessed live, watcher or not)."""
    query = select(ScheduledTask).where(ScheduledTask.enabled.is_(True))
    schedules = list(db.session.scalars(query.order_by(ScheduledTask.name)))
    return [
        w.schedule.name for w in watch(schedules, utcnow()) if w.assessment.state == WatchState.LATE
    ]
