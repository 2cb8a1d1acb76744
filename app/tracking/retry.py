"""Manual retry: re-send a failed or revoked execution, exactly as it ran, as a new execution."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import FINAL_STATUSES, TaskExecution, TaskStatus

RETRYABLE = frozenset({TaskStatus.FAILURE, TaskStatus.REVOKED})


class Unroutable(Conflict):
    """The message would go to a queue no worker is configured to read (Celery refuses to
    create it, and a retry there would wait forever)."""

    code = "unroutable"


def is_retryable(execution: TaskExecution) -> bool:
    """Failed and revoked executions can be sent again, and so can lost ones (their message or
    their worker is gone: they will never end by themselves)."""
    return execution.status in RETRYABLE or (
        execution.lost_suspect and execution.status not in FINAL_STATUSES
    )


def send_linked(
    task_name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    original_task_id: str,
    queue: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """Send ``task_name`` with a new id whose execution records ``retry_of=original_task_id``.

    A ``queue`` that is not configured is refused (:class:`Unroutable`) before anything is sent.
    """
    from celeryconfig import TASK_QUEUES

    if queue and queue not in TASK_QUEUES:
        raise Unroutable(
            _(
                "The queue %(queue)s is not configured, so nothing would run this; send it "
                "again from its source.",
                queue=queue[:100],
            )
        )
    celery = current_app.extensions["celery"]
    new_id = str(uuid.uuid4())
    options: dict[str, Any] = {
        "task_id": new_id,
        "headers": {**(headers or {}), "ewas_retry_of": original_task_id},
    }
    if queue:
        options["queue"] = queue
    celery.send_task(task_name, args=args, kwargs=kwargs, **options)
    return new_id


def retry_execution(task_id: str) -> str:
    """Retry a failed, revoked or lost execution; return the new task id."""
    execution = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    if execution is None:
        raise NotFound(_("No execution with task id %(task_id)s.", task_id=task_id))
    if not is_retryable(execution):
        raise Conflict(
            _(
                "Only failed, revoked or lost executions can be retried; this one is %(status)s.",
                status=execution.status.value,
            )
        )
    if execution.args is None or execution.kwargs is None or not execution.task_name:
        raise Conflict(
            _(
                "The arguments of this execution are not recorded (yet); it cannot be re-run "
                "exactly."
            )
        )
    if not execution.replayable:
        raise Conflict(
            _(
                "The arguments of this execution were redacted or cut when stored, so it cannot be "
                "re-run exactly; send it again from its source."
            )
        )
    return send_linked(
        execution.task_name,
        list(execution.args or []),
        dict(execution.kwargs or {}),
        task_id,
        queue=execution.queue,
    )
