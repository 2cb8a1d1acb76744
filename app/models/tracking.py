"""Tables the tracking subsystem keeps beside executions: dead letters and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import BigIntPK, UTCDateTime, utcnow


class DeadLetter(Model):
    """The full message of a task whose retries are exhausted, kept until requeued or discarded.

    Redis drops rejected messages (dead-letter exchanges are RabbitMQ's), so the morgue lives in
    the database, where a Redis restart cannot lose it.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_name: Mapped[str] = mapped_column(String(255), index=True)
    queue: Mapped[str | None] = mapped_column(String(100))
    args: Mapped[Any | None] = mapped_column(JSON)
    kwargs: Mapped[Any | None] = mapped_column(JSON)
    headers: Mapped[Any | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requeued_task_id: Mapped[str | None] = mapped_column(String(64))
    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def shown_args(self) -> Any:
        """The arguments as readers see them: redacted and capped like an execution's."""
        return _shown(self.args)

    @property
    def shown_kwargs(self) -> Any:
        return _shown(self.kwargs)

    @property
    def shown_headers(self) -> Any:
        return _shown(self.headers)


def _shown(value: Any) -> Any:
    from app.tracking.capture import redacted_copy  # the one home of redaction

    return None if value is None else redacted_copy(value)


class Alert(Model):
    """An escalation: a critical task failed, or a task was dead-lettered.

    ``notified_at`` stays NULL until a notifier accepted it: such rows are the outbox.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        # The notification outbox: alerts not notified yet (a few, among many notified ones).
        Index(
            "ix_alerts_unnotified",
            "created_at",
            postgresql_where=text("notified_at IS NULL"),
            sqlite_where=text("notified_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="error")
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    task_name: Mapped[str | None] = mapped_column(String(255))
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notify_error: Mapped[str | None] = mapped_column(Text)
    # The outbox (app.tracking.alerts): who is sending it now (since when), how many attempts
    # failed, and when the next one is due.
    notify_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    notify_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
