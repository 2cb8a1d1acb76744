"""Periodic snapshots of each broker queue, for the 7-day depth trend of the queues page."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import BigIntPK, UTCDateTime, utcnow


class QueueSnapshot(Model):
    """One queue's depth and latency (age of its oldest message) at ``taken_at``.

    Written every five minutes by ``task_monitoring.tasks.snapshot_queues``, which also prunes
    rows older than ``QUEUE_SNAPSHOT_RETENTION_DAYS``: a week is ~2,300 rows per queue.
    """

    __tablename__ = "queue_snapshots"
    __table_args__ = (Index("ix_queue_snapshots_queue_taken_at", "queue", "taken_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    queue: Mapped[str] = mapped_column(String(100))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    depth: Mapped[int] = mapped_column(Integer)
    latency_seconds: Mapped[float | None] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"<QueueSnapshot {self.queue} {self.taken_at} {self.depth}>"
