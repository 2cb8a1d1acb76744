"""The runs list: filters kept in the URL, keyset pages, a polled table."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.extensions import db
from app.models import PipelineRun, Role, ScheduledTask
from app.paging import BadCursor
from app.services.runs import page
from app.web import bp
from app.web.fragments import page_or_fragment
from app.web.run_filters import RunFilterForm

PAGE_SIZE = 50


def invalid_page(form: RunFilterForm, message: str) -> Response:
    """The list page with the filter form and its errors, as a 400."""
    body = render_template(
        "tasks/runs/page.html",
        form=form,
        invalid=message,
        filters=form.url_args(),
        timezone=str(get_timezone()),
    )
    return Response(body, 400, mimetype="text/html")


@bp.get("/runs/")
@requires(Role.VIEWER)
def runs() -> Response:
    """Runs, newest first, filtered; HTMX polls get only the table."""
    form = RunFilterForm(request.args)
    if not form.validate():
        return invalid_page(form, _("Some filters are not valid; see the messages beside them."))
    try:
        result = page({**form.query(), "page_size": PAGE_SIZE, "cursor": form.cursor.data or None})
    except BadCursor as error:
        return invalid_page(form, error.message)
    filters = form.url_args()
    context: dict[str, Any] = {
        "form": form,
        "filters": filters,
        "result": result,
        "timezone": str(get_timezone()),
        # Only the newest page changes as runs arrive; older pages are not polled.
        "live": result["previous_cursor"] is None,
        "poll_url": url_for("web.runs", **filters),
        "schedules": _schedule_names(result["items"]),
        "next_url": _page_url(filters, result["next_cursor"]),
        "previous_url": _page_url(filters, result["previous_cursor"]),
    }
    return page_or_fragment("tasks/runs/page.html", "tasks/runs/_table.html", **context)


def _schedule_names(rows: list[PipelineRun]) -> dict[int, str]:
    """Names of the schedules of this page's runs, in one indexed query."""
    ids = {r.schedule_id for r in rows if r.schedule_id is not None}
    if not ids:
        return {}
    query = select(ScheduledTask.id, ScheduledTask.name).where(ScheduledTask.id.in_(ids))
    return dict(db.session.execute(query).all())


def _page_url(filters: dict[str, Any], cursor: str | None) -> str | None:
    return url_for("web.runs", **filters, cursor=cursor) if cursor else None
