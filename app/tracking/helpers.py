"""The spec's explicit helpers, on the same event path as the automatic signals.

Tasks need none of this to be tracked; use it to add what signals cannot know (the source and
variable a task works on, an intermediate status or result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import current_task

from app.models.validation import validate_task_id
from app.tracking import events
from app.tracking.signals import emit

KINDS = {
    "pending": events.PUBLISHED,
    "started": events.STARTED,
    "retry": events.RETRIED,
    "success": events.SUCCEEDED,
    "failure": events.FAILED,
    "revoked": events.REVOKED,
}


@dataclass(frozen=True)
class ExecutionRef:
    """A handle on a tracked execution (the row itself is written by the recorder)."""

    task_id: str


def _attempt(task_id: str) -> int:
    request = getattr(current_task, "request", None)
    return (request.retries or 0) if request is not None and request.id == task_id else 0


def create_task_execution(
    task_id: str,
    task_type: str,
    source_id: int | None = None,
    variable_id: int | None = None,
    **fields: Any,
) -> ExecutionRef:
    """Record that ``task_id`` is of ``task_type`` and works on this source and variable."""
    task_id = validate_task_id(task_id)
    data = {"task_type": task_type, "source_id": source_id, "variable_id": variable_id, **fields}
    emit(events.NOTE, task_id, _attempt(task_id), {k: v for k, v in data.items() if v is not None})
    return ExecutionRef(task_id)


def update_task_execution(
    execution: ExecutionRef | str,
    status: str,
    result: Any = None,
    error_message: str | None = None,
) -> None:
    """Move ``execution`` to ``status`` (one of the TaskExecution statuses)."""
    task_id = execution if isinstance(execution, str) else execution.task_id
    if status not in KINDS:
        raise ValueError(f"unknown status {status!r}; expected one of {sorted(KINDS)}")
    fields: dict[str, Any] = {}
    if result is not None:
        from app.tracking.capture import capture_result

        fields["result"] = capture_result(result)
    if error_message is not None:
        fields["error_message"] = error_message
    emit(KINDS[status], task_id, _attempt(task_id), fields)
