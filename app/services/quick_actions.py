"""The dashboard's quick retry of the failures of the last hour (its run-now button is
:func:`app.services.schedules.run_now`). Each retry is audited and commits its own audit entry,
see :func:`retry_recent_failures`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from app.errors import DomainError
from app.extensions import db
from app.models import AuditEntry, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.paging import Cursor, keyset_page
from app.services.audit import record_audit
from app.tracking.retry import Unroutable, retry_execution

RETRY_LIMIT = 500
RETRY_ACTION = "execution.retry"


@dataclass
class RetryReport:
    new_task_ids: list[str] = field(default_factory=list)
    refused: int = 0  # not re-runnable exactly (arguments cut, redacted or not recorded)
    unroutable: int = 0  # their queue is not configured any more
    more: bool = False  # more failures than one round retries
    broker_error: str | None = None  # the broker stopped answering: the rest were not sent


def recent_failures(hours: int = 1, limit: int = RETRY_LIMIT) -> tuple[list[str], bool]:
    """Task ids of executions that failed in the last ``hours`` and were never retried (nor
    refused a retry), oldest first, at most ``limit``; and whether more remain.

    ``started_at`` bounds the scan to the (status, started_at) index: an attempt that ended in the
    window cannot have started before the broker's visibility timeout.
    """
    now = utcnow()
    since = now - timedelta(hours=hours)
    options = current_app.extensions["celery"].conf.broker_transport_options or {}
    earliest = since - timedelta(seconds=float(options.get("visibility_timeout", 3600)))
    retry = aliased(TaskExecution)
    query = select(TaskExecution.task_id, TaskExecution.completed_at, TaskExecution.id).where(
        TaskExecution.status == TaskStatus.FAILURE,
        or_(TaskExecution.started_at >= earliest, TaskExecution.started_at.is_(None)),
        TaskExecution.completed_at >= since,
        ~select(retry.id).where(retry.retry_of == TaskExecution.task_id).exists(),
    )
    key = (TaskExecution.completed_at, TaskExecution.id)
    fresh: list[str] = []
    cursor: Cursor | None = None
    while True:  # until one past the limit: audited failures are skipped, not counted
        page = keyset_page(query, key, limit, cursor, descending=False)
        fresh += _not_retried([row.task_id for row in page.rows])
        cursor = page.next
        if len(fresh) > limit or cursor is None:
            return fresh[:limit], len(fresh) > limit


def _not_retried(task_ids: list[str]) -> list[str]:
    """``task_ids`` but those retried already: the retry's own row appears when the recorder
    stores it, the audit trail knows at once."""
    audited = set(
        db.session.scalars(
            select(AuditEntry.target_id).where(
                AuditEntry.action == RETRY_ACTION,
                AuditEntry.target_id.in_(task_ids),
            )
        )
    )
    return [task_id for task_id in task_ids if task_id not in audited]


def retry_recent_failures(hours: int = 1, limit: int = RETRY_LIMIT) -> RetryReport:
    """Retry each failure of the last ``hours`` not retried yet, exactly as it ran; each retry
    (or refusal) is audited like a retry from the API.

    Each audit entry is committed as soon as its message is sent (or refused): the entry is
    what keeps the next click from sending that failure again, before the retry's own row is
    recorded, so it must outlive anything that fails later in the round.
    """
    task_ids, more = recent_failures(hours, limit)
    report = RetryReport(more=more)
    for task_id in task_ids:
        try:
            new_id = retry_execution(task_id)
        except (KombuError, RedisError) as error:
            report.broker_error = f"{type(error).__name__}: {error}"
            break
        except DomainError as error:
            if isinstance(error, Unroutable):
                report.unroutable += 1
            else:
                report.refused += 1
            record_audit(
                RETRY_ACTION,
                "execution",
                task_id,
                outcome=error.code,
                details={"message": error.message},
            )
        else:
            report.new_task_ids.append(new_id)
            record_audit(RETRY_ACTION, "execution", task_id, details={"new_task_id": new_id})
        db.session.commit()
    return report
