"""Interim data-pipeline work for the predefined schedules (the pipeline issue replaces it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import Source, TaskExecution, TaskStatus, Variable
from app.models.types import utcnow


def validate_data() -> dict[str, Any]:
    """Count sources and variables, and flag executions stuck in ``started``."""
    from celeryconfig import TASK_TIME_LIMIT

    stuck_before = utcnow() - timedelta(seconds=TASK_TIME_LIMIT)
    stuck = db.session.scalar(
        select(func.count()).where(
            TaskExecution.status == TaskStatus.STARTED, TaskExecution.started_at < stuck_before
        )
    )
    return {
        "sources": db.session.scalar(select(func.count(Source.id))),
        "variables": db.session.scalar(select(func.count(Variable.id))),
        "stuck_started": stuck,
    }


def pipeline_summary(source: str) -> dict[str, Any]:
    """What a pipeline run for ``source`` would cover: the source and its active variables."""
    found = db.session.scalar(select(Source).where(Source.code == source))
    if found is None:
        return {"source": source, "found": False, "variables": 0}
    variables = db.session.scalar(
        select(func.count(Variable.id)).where(Variable.source_id == found.id)
    )
    return {"source": source, "found": True, "active": found.is_active, "variables": variables}
