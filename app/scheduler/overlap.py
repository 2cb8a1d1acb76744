"""The overlap policy: is the previous run of a schedule still running?

Beat asks before sending an occurrence of a schedule whose policy is not ``allow``. The answer
comes from the database: the schedule's latest pipeline run (kept by the recorder) is running,
or its latest send's run is not recorded yet (for at most ``UNTRACKED_WINDOW`` after the send).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import PipelineRun, RunStatus, ScheduleRun
from app.models.types import utcnow

# A send the recorder has not tracked yet counts as running for this long after it was sent
# (the recorder folds within a second; a message lost before it was tracked must not block the
# schedule for ever).
UNTRACKED_WINDOW = timedelta(minutes=5)


def running_run(schedule_id: int, unrecorded: str | None = None) -> str | None:
    """The root task id of the schedule's previous run while it still runs; None once it ended.

    ``unrecorded`` is the task id of a send beat made whose run row is not in the database yet
    (still in its outbox): it counts as the latest send. The caller handles database errors.
    """
    latest = db.session.execute(
        select(PipelineRun.root_task_id, PipelineRun.status)
        .where(PipelineRun.schedule_id == schedule_id)
        .order_by(PipelineRun.created_at.desc(), PipelineRun.id.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.status == RunStatus.RUNNING:
        return latest.root_task_id
    sent_task = unrecorded or db.session.scalar(
        select(ScheduleRun.task_id)
        .where(
            ScheduleRun.schedule_id == schedule_id,
            ScheduleRun.task_id.is_not(None),
            ScheduleRun.error.is_(None),
            ScheduleRun.sent_at > utcnow() - UNTRACKED_WINDOW,
        )
        .order_by(ScheduleRun.sent_at.desc(), ScheduleRun.id.desc())
        .limit(1)
    )
    if sent_task is None or (latest is not None and latest.root_task_id == sent_task):
        return None
    known = db.session.scalar(
        select(PipelineRun.status).where(PipelineRun.root_task_id == sent_task).limit(1)
    )
    if known is not None:
        return sent_task if known == RunStatus.RUNNING else None
    # Sent, and its run not recorded yet: its execution may not be tracked yet, or be tracked
    # from its worker's start alone (the start can reach the recorder before the publish event,
    # which carries the schedule id that makes the run). Running until its run says otherwise.
    return sent_task
