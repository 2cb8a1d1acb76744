"""Page views."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import select

from app.auth.access import requires
from app.extensions import db
from app.models import Role, TaskExecution, TaskType
from app.web import bp

RECENT_LIMIT = 50


@bp.get("/")
@requires(Role.VIEWER)
def dashboard() -> str:
    """Task types and the most recent executions."""
    task_types = db.session.scalars(select(TaskType).order_by(TaskType.name)).all()
    executions = db.session.scalars(
        select(TaskExecution)
        .order_by(TaskExecution.created_at.desc(), TaskExecution.id.desc())
        .limit(RECENT_LIMIT)
    ).all()
    return render_template("tasks/dashboard.html", task_types=task_types, executions=executions)
