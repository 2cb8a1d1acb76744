"""Test rows with sensible defaults and keyword overrides. Each factory adds its row to the
session and flushes (ids and defaults are set); the test commits when other connections, a
request that rolls back or another process must see it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Alert,
    DeadLetter,
    PipelineRun,
    RunStatus,
    RunStep,
    ScheduledTask,
    Source,
    StepOrigin,
    TaskExecution,
    TaskStatus,
    TaskType,
    Variable,
)
from app.models.types import utcnow

T = TypeVar("T")
RETRIEVE = "data_pipeline.tasks.retrieve_source"
HEALTH = "task_monitoring.tasks.health_check"


def _added(row: T) -> T:
    db.session.add(row)
    db.session.flush()
    return row


def new_id() -> str:
    return str(uuid.uuid4())


def type_named(name: str) -> TaskType | None:
    """A seeded task type by name."""
    return db.session.scalar(select(TaskType).where(TaskType.name == name))


def execution(*, task_type: TaskType | str | None = None, **values: Any) -> TaskExecution:
    """A successful retrieval (queue data_retrieval, arguments ``[1]``) unless told; a failure
    gets the error message "boom" unless given one. ``task_type`` may be a type's name."""
    status = values.setdefault("status", TaskStatus.SUCCESS)
    values["task_id"] = values.get("task_id") or new_id()
    values.setdefault("task_name", RETRIEVE)
    values.setdefault("queue", "data_retrieval")
    values.setdefault("error_message", "boom" if status == TaskStatus.FAILURE else None)
    values.setdefault("args", [1])
    values.setdefault("kwargs", {})
    if task_type is not None:  # None leaves task_type_id alone
        values["task_type"] = type_named(task_type) if isinstance(task_type, str) else task_type
    return _added(TaskExecution(**values))


def ran(seconds: float, ended: datetime) -> dict[str, datetime]:
    """The times of an execution that ran ``seconds`` until ``ended``, created a second before
    it started: ``execution(**ran(2.5, now))``."""
    started = ended - timedelta(seconds=seconds)
    return {
        "created_at": started - timedelta(seconds=1),
        "started_at": started,
        "completed_at": ended,
    }


def executions(
    count: int, start: datetime, step: timedelta = timedelta(minutes=1), **values: Any
) -> list[TaskExecution]:
    """``count`` executions (as ``execution``) created ``step`` apart from ``start``."""
    return [execution(created_at=start + i * step, **values) for i in range(count)]


def execution_values(**values: Any) -> dict[str, Any]:
    """A ``task_executions`` row for a Core insert (no ORM defaults run): every NOT NULL column."""
    now = utcnow()
    return {
        "task_id": new_id(),
        "status": TaskStatus.PENDING,
        "created_at": now,
        "updated_at": now,
        "retry_count": 0,
        "is_dead_letter": False,
        "lost_suspect": False,
        "replayable": True,
        "state_rank": 0,
        "state_at": 0.0,
        **values,
    }


def run(*steps: str, status: RunStatus = RunStatus.RUNNING, **values: Any) -> PipelineRun:
    """A pipeline run of a chain of ``steps`` (task names; the first is the root task), as the
    recorder keeps it; started now unless told."""
    root = values.pop("root_task_id", None) or new_id()
    values.setdefault("task_name", steps[0] if steps else HEALTH)
    values.setdefault("created_at", utcnow())
    values.setdefault("started_at", values["created_at"])
    found = PipelineRun(root_task_id=root, status=status, steps_total=len(steps), **values)
    previous = None
    for index, name in enumerate(steps):
        task_id = root if index == 0 else new_id()
        origin = StepOrigin.ROOT if index == 0 else StepOrigin.CHAIN
        found.steps.append(
            RunStep(task_id=task_id, task_name=name, origin=origin, after_task_id=previous)
        )
        previous = task_id
    return _added(found)


def schedule(**values: Any) -> ScheduledTask:
    """A schedule saved through the scheduler service (crontab at noon UTC unless told); Redis
    gets it when the test commits."""
    from app.scheduler import service

    spec = {"name": "noon", "task": HEALTH, "kind": "crontab", **values}
    if spec["kind"] == "crontab":
        spec.setdefault("crontab", "0 12 * * *")
    return service.create_schedule(**spec)


def dead_letter(**values: Any) -> DeadLetter:
    """A retrieval's message dead-lettered after a refused connection, unless told."""
    values.setdefault("task_id", new_id())
    values.setdefault("task_name", RETRIEVE)
    values.setdefault("queue", "default")
    values.setdefault("args", [7, 12])
    values.setdefault("kwargs", {"full": True})
    values.setdefault("headers", {"ewas_schedule_id": 3})
    values.setdefault("error_message", "ConnectionError: connection refused by api.example.org")
    return _added(DeadLetter(**values))


def alert(**values: Any) -> Alert:
    """A critical failure alert of a retrieval, unless told."""
    values.setdefault("kind", "critical_failure")
    values.setdefault("severity", "critical")
    values.setdefault("title", f"Critical task failed: {RETRIEVE}")
    return _added(Alert(**values))


def source(code: str = "idmc", **values: Any) -> Source:
    values.setdefault("name", f"Source {code}")
    return _added(Source(code=code, **values))


def variable(source: Source, code: str = "idu", **values: Any) -> Variable:
    values.setdefault("name", f"Variable {code}")
    return _added(Variable(source=source, code=code, **values))
