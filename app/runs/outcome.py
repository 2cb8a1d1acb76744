"""The outcome of a schedule run row: its pipeline run's, else its execution's.

A run row names the task id it was sent with; the pipeline run rooted at that task id holds the
outcome of all the work the send started (chain steps and sent tasks included). The recorder may
not have seen the run yet: then the execution, if any, stands in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, func

from app.models import PipelineRun, TaskExecution

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
