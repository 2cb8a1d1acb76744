"""Links between pages, as template globals."""

from __future__ import annotations

from flask import url_for

from app.web import bp

EXECUTION_DETAIL = "web.execution_detail"


@bp.app_template_global("execution_url")
def execution_url(task_id: str | None) -> str | None:
    """The execution detail page of ``task_id`` (None for no task id)."""
    if not task_id:
        return None
    return url_for(EXECUTION_DETAIL, task_id=task_id)
