"""Pipeline runs: everything one send started (a root execution and every execution it led to).

A run is kept as its own row, maintained by the recorder (app.runs.record) in the transaction
that folds its executions, so pages read a run's status instead of deriving it from executions.
Its steps name the executions that belong to it, and the steps still to come: a chain's message
carries its later steps, so they are known (and shown as "not run" when an earlier step failed)
before they are ever sent.
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
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import BigIntPK, UTCDateTime, utcnow


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    REVOKED = "revoked"


class StepOrigin(enum.StrEnum):
    ROOT = "root"  # the execution the send started
    CHAIN = "chain"  # a later step of a chain, known from the chain's message
    SENT = "sent"  # a task sent by a step (Celery's parent and root ids)
    RESUME = "resume"  # sent again by an operator (resume, retry), replacing an earlier step


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class PipelineRun(Model):
    """One run: its status and step counts, and where it failed."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        CheckConstraint(
            "finished_at IS NULL OR started_at IS NULL OR started_at <= finished_at",
            name="started_before_finished",
        ),
        # Keyset pages, newest first: the list, and the list by schedule, status or task name.
        Index("ix_pipeline_runs_created", "created_at", "id"),
        Index("ix_pipeline_runs_schedule_created", "schedule_id", "created_at", "id"),
        # "the failures of this schedule": the question asked after a bad night.
        Index(
            "ix_pipeline_runs_schedule_status_created", "schedule_id", "status", "created_at", "id"
        ),
        Index("ix_pipeline_runs_status_created", "status", "created_at", "id"),
        Index("ix_pipeline_runs_task_name_created", "task_name", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    root_task_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_name: Mapped[str | None] = mapped_column(String(255))
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    schedule_occurrence: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_kind: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    steps_succeeded: Mapped[int] = mapped_column(Integer, default=0)
    steps_failed: Mapped[int] = mapped_column(Integer, default=0)
    steps_running: Mapped[int] = mapped_column(Integer, default=0)
    steps_not_run: Mapped[int] = mapped_column(Integer, default=0)
    failed_step_task_id: Mapped[str | None] = mapped_column(String(64))
    failed_step_name: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)

    steps: Mapped[list[RunStep]] = relationship(
        back_populates="run", passive_deletes=True, order_by="RunStep.id"
    )

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def __repr__(self) -> str:
        return f"<PipelineRun {self.root_task_id} {self.status}>"


class RunStep(Model):
    """An execution of a run, or one it plans to send (no execution yet)."""

    __tablename__ = "pipeline_run_steps"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_name: Mapped[str | None] = mapped_column(String(255))
    origin: Mapped[StepOrigin] = mapped_column(_enum(StepOrigin, "run_step_origin"))
    # The step this one follows (a chain's previous step, the task that sent it); None for the root.
    after_task_id: Mapped[str | None] = mapped_column(String(64))
    # The step an operator's resume or retry sent this one in place of.
    replaces_task_id: Mapped[str | None] = mapped_column(String(64))
    # A planned step's arguments, as its chain's message carried them (redacted and capped like
    # an execution's); ``immutable`` False means it also receives the previous step's result.
    planned_args: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    planned_kwargs: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    immutable: Mapped[bool | None] = mapped_column(Boolean)
    replayable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    run: Mapped[PipelineRun] = relationship(back_populates="steps")

    def __repr__(self) -> str:
        return f"<RunStep {self.task_id} of run {self.run_id}>"
