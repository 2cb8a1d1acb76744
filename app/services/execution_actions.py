"""Operator actions on executions (retry, cancel), shared by the JSON API and the pages.

Each action is audited and committed here, outcome included, because each one also talks to the
broker (a message sent, a revoke broadcast): the audit entry must be stored whatever the caller
does with its own transaction afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import update

from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.models import FINAL_STATUSES, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.services.audit import record_audit
from app.services.executions import by_task_id
from app.tracking.retry import retry_execution


@dataclass(frozen=True)
class Cancelled:
    task_id: str
    terminated: bool  # a started execution is terminated; a pending one is only revoked
    previous_status: str


def retry(task_id: str) -> str:
    """Retry a failed or revoked execution as a new linked one; return its task id (audited)."""
    try:
        new_id = retry_execution(task_id)
    except DomainError as error:
        record_audit(
            "execution.retry",
            "execution",
            task_id[:64],
            outcome=error.code,
            details={"message": error.message},
        )
        db.session.commit()
        raise
    record_audit("execution.retry", "execution", task_id, details={"new_task_id": new_id})
    db.session.commit()
    return new_id


def cancel(task_id: str) -> Cancelled:
    """Revoke a pending or running execution (terminating it when started); audited.

    The request is stored on the execution (when, who) before the revoke is broadcast, so its
    page says "cancel requested" at once: a pending message is only discarded when a worker
    picks it up, and only then does the recorder mark the execution revoked. The update is
    conditional on a non-final status, so a cancel racing the task's end does not mark a
    finished execution.
    """
    execution = by_task_id(task_id)
    if execution is None:
        raise NotFound(_("No execution with task id %(task_id)s.", task_id=task_id[:64]))
    if execution.status in FINAL_STATUSES:
        raise Conflict(_("The execution is already %(status)s.", status=str(execution.status)))
    terminate = execution.status == TaskStatus.STARTED
    previous = str(execution.status)
    entry = record_audit("execution.cancel", "execution", task_id, details={"terminate": terminate})
    db.session.execute(
        update(TaskExecution)
        .where(TaskExecution.id == execution.id, TaskExecution.status.not_in(FINAL_STATUSES))
        .values(cancel_requested_at=utcnow(), cancel_requested_by=entry.actor_name)
        .execution_options(synchronize_session="fetch")
    )
    db.session.commit()
    current_app.extensions["celery"].control.revoke(task_id, terminate=terminate)
    return Cancelled(task_id, terminate, previous)
