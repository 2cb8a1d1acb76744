"""TaskExecution: one row per Celery task id, spec 7.3.

Celery retries keep the task id, so a retried task updates the same row (``retry_count`` up);
each attempt's own timeline is kept beside it by the tracking subsystem.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.errors import Conflict, InvalidInput
from app.extensions import Model, db
from app.models.pipeline import Source, Variable
from app.models.task_type import TaskType
from app.models.types import BigIntPK, UTCDateTime, utcnow
from app.models.validation import validate_task_id


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    STARTED = "started"
    SUCCESS = "success"
    FAILURE = "failure"
    RETRY = "retry"
    REVOKED = "revoked"


FINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.REVOKED})

status_type = Enum(
    TaskStatus,
    name="task_status",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda statuses: [s.value for s in statuses],
)


class TaskExecution(Model):
    __tablename__ = "task_executions"
    __table_args__ = (
        CheckConstraint(
            "started_at IS NULL OR completed_at IS NULL OR started_at <= completed_at",
            name="started_before_completed",
        ),
        CheckConstraint(
            "status <> 'failure' OR (error_message IS NOT NULL AND error_message <> '')",
            name="failure_has_error_message",
        ),
        Index("ix_task_executions_type_status_started", "task_type_id", "status", "started_at"),
        Index("ix_task_executions_source_variable", "source_id", "variable_id"),
        # created_at leads; id breaks ties so keyset pagination has a unique, sortable key.
        Index("ix_task_executions_created_at", "created_at", "id"),
        Index("ix_task_executions_root_id", "root_id"),
        Index("ix_task_executions_status_started", "status", "started_at"),
        # The executions page filters by task name, queue or variable alone, newest first.
        Index("ix_task_executions_task_name_created", "task_name", "created_at", "id"),
        Index("ix_task_executions_queue_created", "queue", "created_at", "id"),
        # Exact percentiles read the durations of a type's executions finished in a window.
        Index("ix_task_executions_type_completed", "task_type_id", "completed_at"),
        # Partial: most executions name no variable, and they cost this index nothing.
        Index(
            "ix_task_executions_variable",
            "variable_id",
            postgresql_where=text("variable_id IS NOT NULL"),
            sqlite_where=text("variable_id IS NOT NULL"),
        ),
        # Argument search (app.services.argument_search): jsonpath @? tests on the arguments as
        # jsonb. jsonb_ops, not jsonb_path_ops: only it can answer ``$.**`` (any depth) paths.
        *(
            Index(
                f"ix_task_executions_{name}_jsonb", text(f"({name}::jsonb)"), postgresql_using="gin"
            ).ddl_if(dialect="postgresql")
            for name in ("args", "kwargs")
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_name: Mapped[str | None] = mapped_column(String(255))
    task_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_types.id", ondelete="RESTRICT")
    )
    status: Mapped[TaskStatus] = mapped_column(status_type, default=TaskStatus.PENDING)
    queue: Mapped[str | None] = mapped_column(String(100))
    worker: Mapped[str | None] = mapped_column(String(255))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime)

    result: Mapped[Any | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int | None] = mapped_column(Integer)

    arg1: Mapped[str | None] = mapped_column(String(255))
    args: Mapped[Any | None] = mapped_column(JSON)
    kwargs: Mapped[Any | None] = mapped_column(JSON)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    variable_id: Mapped[int | None] = mapped_column(ForeignKey("variables.id", ondelete="RESTRICT"))

    parent_id: Mapped[str | None] = mapped_column(String(64))
    root_id: Mapped[str | None] = mapped_column(String(64))
    retry_of: Mapped[str | None] = mapped_column(String(64), index=True)
    schedule_id: Mapped[int | None] = mapped_column(Integer, index=True)

    logs: Mapped[Any | None] = mapped_column(JSON)
    # The timeline of runs (Celery retries and redeliveries reuse the task id), oldest first:
    # run_id, attempt, status, worker, started_at, completed_at, error_message,
    # retry_delay_seconds, cpu_seconds, peak_memory_bytes.
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    is_dead_letter: Mapped[bool] = mapped_column(Boolean, default=False)
    lost_suspect: Mapped[bool] = mapped_column(Boolean, default=False)
    # False when stored arguments were cut or had secrets redacted: a retry could not re-run them.
    replayable: Mapped[bool] = mapped_column(Boolean, default=True)
    run_kind: Mapped[str | None] = mapped_column(String(16))
    schedule_occurrence: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An operator asked to cancel it (when, who): shown at once, while a pending message still
    # waits for a worker to discard it and the recorder to mark the execution revoked.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    # Order of the last status-bearing event applied (attempt, phase, event time), so that late
    # or repeated tracking events never move an execution backwards.
    state_rank: Mapped[int] = mapped_column(Integer, default=0)
    state_at: Mapped[float] = mapped_column(Float, default=0.0)

    task_type: Mapped[TaskType | None] = relationship()
    source: Mapped[Source | None] = relationship()
    variable: Mapped[Variable | None] = relationship()

    @validates("task_id")
    def _check_task_id(self, _key: str, value: str) -> str:
        return validate_task_id(value)

    @property
    def duration_seconds(self) -> float | None:
        """Seconds between start and completion, when both are known."""
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    @property
    def is_completed(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def can_retry(self) -> bool:
        """Whether Celery may retry again: the retry count is still under the maximum.

        ``max_retries`` of None means no limit, as in Celery.
        """
        return self.max_retries is None or self.retry_count < self.max_retries

    @property
    def success_rate(self) -> float | None:
        """Share of successes among finished executions of the same task (same name, else type)."""
        if self.task_name:
            similar = TaskExecution.task_name == self.task_name
        elif self.task_type_id is not None:
            similar = TaskExecution.task_type_id == self.task_type_id
        else:
            return None
        query = select(
            func.count().filter(TaskExecution.status == TaskStatus.SUCCESS),
            func.count(),
        ).where(similar, TaskExecution.status.in_(FINAL_STATUSES))
        successes, finished = db.session.execute(query).one()
        return successes / finished if finished else None

    def __repr__(self) -> str:
        return f"<TaskExecution {self.task_id} {self.status}>"


def check_consistency(execution: TaskExecution) -> None:
    """Cross-field rules, checked before every ORM write (the database enforces them too)."""
    fields: dict[str, list[str]] = {}
    if execution.status == TaskStatus.FAILURE and not execution.error_message:
        fields["error_message"] = [_("A failed execution needs an error message.")]
    if (
        execution.started_at is not None
        and execution.completed_at is not None
        and execution.completed_at < execution.started_at
    ):
        fields["completed_at"] = [_("Completion cannot come before the start.")]
    if fields:
        raise InvalidInput(_("The execution is inconsistent."), fields)


@event.listens_for(TaskExecution, "before_insert")
def _before_insert(_mapper: Any, connection: Connection, execution: TaskExecution) -> None:
    check_consistency(execution)
    duplicate = connection.scalar(
        select(TaskExecution.id).where(TaskExecution.task_id == execution.task_id)
    )
    if duplicate is not None:
        message = _(
            "An execution with task id %(task_id)s already exists.", task_id=execution.task_id
        )
        raise Conflict(message, {"task_id": [message]})


@event.listens_for(TaskExecution, "before_update")
def _before_update(_mapper: Any, _connection: Connection, execution: TaskExecution) -> None:
    check_consistency(execution)
