"""The outcome of a schedule run row: its pipeline run's, else its execution's.

A run row names the task id it was sent with; the pipeline run rooted at that task id holds the
outcome of all the work the send started (chain steps and sent tasks included). The recorder may
not have seen the run yet: then the execution, if any, stands in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, String, func, select

from app.extensions import db
from app.models import PipelineRun, RunKind, ScheduledTask, ScheduleRun, TaskExecution

ERROR_TEXT = 200  # errors are grouped by the start of their first line


def outcome_columns() -> tuple:
    """Status, start, end and error of a run row's outcome: its pipeline run's, else its
    execution's (outer-joined by :func:`join_outcome`)."""
    return (
        func.coalesce(PipelineRun.status, TaskExecution.status, type_=String),
        func.coalesce(PipelineRun.started_at, TaskExecution.started_at),
        func.coalesce(PipelineRun.finished_at, TaskExecution.completed_at),
        func.substr(
            func.coalesce(PipelineRun.error_message, TaskExecution.error_message), 1, ERROR_TEXT
        ),
        PipelineRun.id,
        PipelineRun.failed_step_name,
    )


def join_outcome(query: Select, task_id_column: Any) -> Select:
    """Outer-join the pipeline run and the execution that ``task_id_column`` started."""
    return query.outerjoin(PipelineRun, PipelineRun.root_task_id == task_id_column).outerjoin(
        TaskExecution, TaskExecution.task_id == task_id_column
    )


def latest_outcomes(ids: list[int], include_missed: bool = True) -> dict[int, Row]:
    """The latest run row of each schedule (optionally without the missed and skipped ones:
    the latest send) with its outcome.

    Each value is ``(run, status, started_at, finished_at, error, pipeline_run_id,
    failed_step)``; one indexed lookup per schedule, in a single query.
    """
    if not ids:
        return {}
    latest = (
        select(ScheduleRun.id)
        .where(ScheduleRun.schedule_id == ScheduledTask.id)
        .order_by(ScheduleRun.occurrence.desc(), ScheduleRun.id.desc())
        .limit(1)
        .correlate(ScheduledTask)
    )
    if not include_missed:
        latest = latest.where(ScheduleRun.kind.not_in([RunKind.MISSED, RunKind.SKIPPED]))
    wanted = select(latest.scalar_subquery()).where(ScheduledTask.id.in_(ids))
    rows = db.session.execute(
        join_outcome(select(ScheduleRun, *outcome_columns()), ScheduleRun.task_id).where(
            ScheduleRun.id.in_(wanted)
        )
    )
    return {row[0].schedule_id: row for row in rows}


def latest_successes(ids: list[int]) -> dict[int, datetime]:
    """When each schedule's latest successful run finished (walks back from its newest run)."""
    if not ids:
        return {}
    status, _started, finished, *_ = outcome_columns()
    latest = (
        join_outcome(select(finished).select_from(ScheduleRun), ScheduleRun.task_id)
        .where(ScheduleRun.schedule_id == ScheduledTask.id, status == "success")
        .order_by(ScheduleRun.occurrence.desc())
        .limit(1)
        .correlate(ScheduledTask)
        .scalar_subquery()
    )
    rows = db.session.execute(select(ScheduledTask.id, latest).where(ScheduledTask.id.in_(ids)))
    return {schedule_id: when for schedule_id, when in rows if when is not None}
