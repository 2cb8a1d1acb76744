"""Queue depth history: periodic snapshots of every queue, and their hourly maxima for charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Integer, cast, delete, func, select

from app.database import rowcount
from app.extensions import db
from app.models import QueueSnapshot
from app.models.types import utcnow
from app.monitoring.queues import queue_stats

HOUR = 3600


@dataclass(frozen=True)
class HourMax:
    """The largest depth and latency snapshotted in one UTC hour (None: no snapshot)."""

    hour: datetime
    depth: int | None
    latency_seconds: float | None


def take_snapshots(client: redis.Redis, now: datetime | None = None) -> list[QueueSnapshot]:
    """Add one snapshot per configured queue (depth and oldest message age); caller commits."""
    taken_at = now or utcnow()
    rows = [
        QueueSnapshot(
            queue=stats["name"],
            taken_at=taken_at,
            depth=stats["depth"],
            latency_seconds=stats["oldest_age_seconds"],
        )
        for stats in queue_stats(client)
    ]
    db.session.add_all(rows)
    return rows


def prune_snapshots(before: datetime) -> int:
    """Delete snapshots taken before ``before``; returns how many. Caller commits."""
    return rowcount(
        db.session.execute(delete(QueueSnapshot).where(QueueSnapshot.taken_at < before))
    )


def _epoch_hour() -> Any:
    """SQL for the snapshot's hour as whole hours since the epoch (UTC on both databases).

    SQLite stores naive UTC text; PostgreSQL ``timestamptz``, whose epoch is zone-free (unlike
    ``date_trunc``, which follows the session's time zone). ``date_part`` answers a double,
    twice as fast to aggregate as the numeric of ``extract``.
    """
    column = QueueSnapshot.taken_at
    if db.session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer) / HOUR
    return cast(func.floor(func.date_part("epoch", column) / HOUR), Integer)


def hourly_maxima(
    queues: list[str], hours: int = 7 * 24, now: datetime | None = None
) -> dict[str, list[HourMax]]:
    """Per queue, one entry per hour of the last ``hours`` (oldest first), aggregated in SQL.

    At most ``len(queues) * hours`` rows come back, however many snapshots were taken.
    """
    now = now or utcnow()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    bucket = _epoch_hour().label("bucket")
    query = (
        select(
            QueueSnapshot.queue,
            bucket,
            func.max(QueueSnapshot.depth),
            func.max(QueueSnapshot.latency_seconds),
        )
        .where(QueueSnapshot.queue.in_(queues), QueueSnapshot.taken_at >= first)
        .group_by(QueueSnapshot.queue, bucket)
    )
    found = {(q, int(b)): (d, lat) for q, b, d, lat in db.session.execute(query)}
    first_bucket = int(first.timestamp()) // HOUR
    trend: dict[str, list[HourMax]] = {}
    for queue in queues:
        points = []
        for offset in range(hours):
            depth, latency = found.get((queue, first_bucket + offset), (None, None))
            hour = datetime.fromtimestamp((first_bucket + offset) * HOUR, UTC)
            points.append(HourMax(hour, depth, latency))
        trend[queue] = points
    return trend
