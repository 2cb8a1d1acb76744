"""Links from the management pages to pages other modules may provide."""

from __future__ import annotations

from flask import current_app, url_for

from app.web import bp

EXECUTION_DETAIL = "web.execution_detail"


@bp.app_template_global("execution_url")
def execution_url(task_id: str | None) -> str | None:
    """The execution detail page of ``task_id``, or None while that page does not exist."""
    if not task_id or EXECUTION_DETAIL not in current_app.view_functions:
        return None
    return url_for(EXECUTION_DETAIL, task_id=task_id)
