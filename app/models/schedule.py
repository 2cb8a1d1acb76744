"""Scheduled tasks (the source of truth for beat) and their run history, spec 7.1.

Redis only holds a projection of these rows (app.scheduler.store); it can be rebuilt from here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.translated import TranslatedDescription
from app.models.types import BigIntPK, UTCDateTime, utcnow


class ScheduleKind(enum.StrEnum):
    CRONTAB = "crontab"
    INTERVAL = "interval"
    ONE_TIME = "one_time"


class IntervalUnit(enum.StrEnum):
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"


class MisfirePolicy(enum.StrEnum):
    RUN_ONCE = "run_once"  # one late (catch-up) run for the missed period, then resume
    SKIP = "skip"  # record the missed occurrences, resume at the next one


class OverlapPolicy(enum.StrEnum):
    ALLOW = "allow"  # send every occurrence, whatever the previous run is doing
    SKIP = "skip"  # not sent while the previous run still runs: recorded as skipped
    QUEUE_ONE = "queue_one"  # sent when the previous run ends; at most one waits


# The largest N of "pause after N consecutive failed runs".
MAX_PAUSE_AFTER_FAILURES = 1000


class RunKind(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    CATCHUP = "catchup"
    MISSED = "missed"
    SKIPPED = "skipped"  # not sent: the schedule's previous run was still running (overlap policy)
    BACKFILL = "backfill"  # sent by an operator for a past occurrence (a backfill)


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class ScheduledTask(TranslatedDescription, Model):
    """A periodic, interval or one-time task definition (django-celery-beat's PeriodicTask)."""

    __tablename__ = "scheduled_tasks"
    __table_args__ = (
        CheckConstraint("interval_every IS NULL OR interval_every > 0", name="interval_positive"),
        CheckConstraint("max_retries IS NULL OR max_retries >= 0", name="max_retries_not_negative"),
        CheckConstraint("grace_seconds IS NULL OR grace_seconds > 0", name="grace_positive"),
        CheckConstraint(
            "max_duration_seconds IS NULL OR max_duration_seconds > 0", name="max_duration_positive"
        ),
        CheckConstraint(
            f"pause_after_failures IS NULL OR pause_after_failures BETWEEN 1 AND "
            f"{MAX_PAUSE_AFTER_FAILURES}",
            name="pause_after_failures_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(255))
    kind: Mapped[ScheduleKind] = mapped_column(_enum(ScheduleKind, "schedule_kind"))
    crontab: Mapped[str | None] = mapped_column(String(200))
    interval_every: Mapped[int | None] = mapped_column(Integer)
    interval_unit: Mapped[IntervalUnit | None] = mapped_column(_enum(IntervalUnit, "interval_unit"))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")

    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    queue: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[int | None] = mapped_column(Integer)
    max_retries: Mapped[int | None] = mapped_column(Integer)
    retry_backoff_seconds: Mapped[float | None] = mapped_column(Float)
    # Follow-up steps run as a Celery chain: [{"task": name, "args": [...], "kwargs": {...}}].
    chain: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    misfire_policy: Mapped[MisfirePolicy] = mapped_column(
        _enum(MisfirePolicy, "misfire_policy"), default=MisfirePolicy.RUN_ONCE
    )

    # The watch (app.watch): how long past its due time an occurrence may go unsent before the
    # schedule is late (None: derived from its timing), and how long its run may take.
    grace_seconds: Mapped[int | None] = mapped_column(Integer)
    max_duration_seconds: Mapped[int | None] = mapped_column(Integer)

    # What an occurrence does while the previous run of this schedule still runs.
    overlap_policy: Mapped[OverlapPolicy] = mapped_column(
        _enum(OverlapPolicy, "overlap_policy"), default=OverlapPolicy.ALLOW
    )
    # Disable the schedule after this many consecutive failed runs (None: never). When it did,
    # ``paused_after_failures`` says after how many (and ``paused_at`` when) until re-enabled.
    pause_after_failures: Mapped[int | None] = mapped_column(Integer)
    paused_after_failures: Mapped[int | None] = mapped_column(Integer)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Occurrences are computed from here: creation, last edit or re-enabling (no catch-up before).
    scheduled_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total_run_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    runs: Mapped[list[ScheduleRun]] = relationship(
        back_populates="schedule", passive_deletes=True, order_by="ScheduleRun.id.desc()"
    )

    @property
    def retry_policy(self) -> dict[str, Any] | None:
        """The override sent with each run (``ewas_retry_policy`` header), if any."""
        if self.max_retries is None and self.retry_backoff_seconds is None:
            return None
        return {
            "max_retries": self.max_retries,
            "backoff_seconds": self.retry_backoff_seconds,
        }

    def __repr__(self) -> str:
        return f"<ScheduledTask {self.name} {self.kind}>"


class ScheduleRun(Model):
    """One occurrence of a schedule: sent (scheduled, manual, catch-up, backfill), missed or
    skipped."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        Index("ix_schedule_runs_schedule_occurrence", "schedule_id", "occurrence"),
        Index("ix_schedule_runs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("scheduled_tasks.id", ondelete="CASCADE"))
    occurrence: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[RunKind] = mapped_column(_enum(RunKind, "schedule_run_kind"))
    # The Celery task id it was sent with: TaskExecution.task_id of the (first) execution.
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # Why it was not sent (a skipped occurrence: the previous run was still running).
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    schedule: Mapped[ScheduledTask] = relationship(back_populates="runs")

    def __repr__(self) -> str:
        return f"<ScheduleRun {self.schedule_id} {self.occurrence} {self.kind}>"
