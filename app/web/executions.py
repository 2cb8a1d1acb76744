"""The executions list: filters kept in the URL, keyset pages, a polled table, batch actions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import load_only
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.errors import NotFound
from app.extensions import db
from app.models import Role, Source, TaskExecution, TaskStatus, TaskType, Variable
from app.paging import BadCursor
from app.services import execution_actions
from app.services.bulk import answer_each
from app.services.execution_analysis import analyze
from app.services.executions import page
from app.web import bp
from app.web.execution_filters import ExecutionFilterForm
from app.web.formatting import status_label
from app.web.fragments import is_htmx, page_or_fragment

PAGE_SIZE = 50
MAX_SELECTION = 1000
LIST_COLUMNS = load_only(
    TaskExecution.id,
    TaskExecution.task_id,
    TaskExecution.task_name,
    TaskExecution.task_type_id,
    TaskExecution.status,
    TaskExecution.queue,
    TaskExecution.source_id,
    TaskExecution.variable_id,
    TaskExecution.created_at,
    TaskExecution.started_at,
    TaskExecution.completed_at,
    TaskExecution.error_message,
    TaskExecution.retry_count,
)


def _page_context() -> dict[str, Any]:
    return {
        "max_selection": MAX_SELECTION,
        "operator_role": Role.OPERATOR,
        "timezone": str(get_timezone()),
    }


def invalid_page(form: ExecutionFilterForm, message: str) -> Response:
    """The list page with the filter form and its errors, as a 400."""
    body = render_template(
        "tasks/executions/page.html",
        form=form,
        invalid=message,
        filters=form.url_args(),
        **_page_context(),
    )
    return Response(body, 400, mimetype="text/html")


@bp.get("/executions/")
@requires(Role.VIEWER)
def executions() -> Response:
    """Executions, newest first, filtered; HTMX polls get only the table."""
    form = ExecutionFilterForm(request.args)
    if not form.validate():
        return invalid_page(form, _("Some filters are not valid; see the messages beside them."))
    cursor = form.cursor.data or None
    try:
        result = page(
            {**form.query(), "page_size": PAGE_SIZE, "cursor": cursor}, options=[LIST_COLUMNS]
        )
    except BadCursor as error:
        return invalid_page(form, error.message)
    filters = form.url_args()
    context: dict[str, Any] = {
        **_page_context(),
        "form": form,
        "filters": filters,
        "result": result,
        # Only the newest page changes as executions arrive; older pages are not polled.
        "live": result["previous_cursor"] is None,
        "poll_url": url_for("web.executions", **filters),
        "selected": set(request.args.getlist("task_ids")),
        "names": _names(result["items"]),
        "status_labels": {s.value: status_label(s.value) for s in TaskStatus},
        "next_url": _page_url(filters, result["next_cursor"]),
        "previous_url": _page_url(filters, result["previous_cursor"]),
    }
    return page_or_fragment("tasks/executions/page.html", "tasks/executions/_table.html", **context)


def _names(rows: list[TaskExecution]) -> dict[str, dict[int, str]]:
    """Names of the types, sources and variables on this page: three small indexed queries
    instead of a lazy load per row."""
    sources = {r.source_id for r in rows if r.source_id is not None}
    variables = {r.variable_id for r in rows if r.variable_id is not None}
    return {
        "types": dict(db.session.execute(select(TaskType.id, TaskType.name)).all()),
        "sources": dict(
            db.session.execute(select(Source.id, Source.code).where(Source.id.in_(sources))).all()
        )
        if sources
        else {},
        "variables": dict(
            db.session.execute(
                select(Variable.id, Variable.code).where(Variable.id.in_(variables))
            ).all()
        )
        if variables
        else {},
    }


def _page_url(filters: dict[str, Any], cursor: str | None) -> str | None:
    return url_for("web.executions", **filters, cursor=cursor) if cursor else None


def _selection() -> tuple[list[str], str | None]:
    """The checked task ids and, when the selection cannot be acted on, why."""
    ids = list(dict.fromkeys(request.form.getlist("task_ids")))
    if not ids:
        return ids, _("Select at least one execution.")
    if len(ids) > MAX_SELECTION:
        return ids, _(
            "Select at most %(limit)s executions at a time (%(count)s selected).",
            limit=MAX_SELECTION,
            count=len(ids),
        )
    return ids, None


def _canonical(task_id: str) -> str:
    """A task id as stored (a lowercase UUID); anything else cannot name an execution."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        raise NotFound(_("No execution with task id %(task_id)s.", task_id=task_id[:64])) from None


def _answer(
    page_template: str, fragment: str, status: int = 200, changed: bool = False, **context: Any
) -> Response:
    """The outcome of a batch action: a fragment for HTMX (swapped in place), else a page.

    HTMX does not swap 4xx answers, so a refused selection reaches it as a 200 fragment that
    shows the reason; browsers without JavaScript get the real status.
    """
    back = request.form.get("back", "")
    context["back"] = back if back.startswith("/tasks/executions/") else url_for("web.executions")
    if is_htmx():
        response = Response(render_template(fragment, **context), 200, mimetype="text/html")
        if changed:  # the table refreshes at once instead of at its next poll
            response.headers["HX-Trigger"] = "executions-changed"
        return response
    return Response(render_template(page_template, **context), status, mimetype="text/html")


def _bulk(action: str) -> Response:
    ids, refusal = _selection()
    if refusal:
        return _answer(
            "tasks/executions/bulk_result.html",
            "tasks/executions/_outcomes.html",
            422,
            action=action,
            refusal=refusal,
            results=[],
        )
    if action == "retry":
        answers = answer_each(
            ids, lambda t: execution_actions.retry(_canonical(t)), 202, "accepted"
        )
    else:

        def cancel(task_id: Any) -> None:
            execution_actions.cancel(_canonical(task_id))

        answers = answer_each(ids, cancel, 202, "accepted")
    results = answers["results"]
    return _answer(
        "tasks/executions/bulk_result.html",
        "tasks/executions/_outcomes.html",
        changed=True,
        action=action,
        refusal=None,
        results=results,
        done=sum(1 for r in results if r["status"] < 400),
    )


@bp.post("/executions/retry")
@requires(Role.OPERATOR)
def executions_bulk_retry() -> Response:
    """Retry the checked failed or revoked executions; one outcome per execution."""
    return _bulk("retry")


@bp.post("/executions/cancel")
@requires(Role.OPERATOR)
def executions_bulk_cancel() -> Response:
    """Cancel the checked pending or running executions; one outcome per execution."""
    return _bulk("cancel")


@bp.post("/executions/analyze")
@requires(Role.VIEWER, write=Role.VIEWER)  # a read sent as POST: a thousand ids overflow a URL
def executions_analyze() -> Response:
    """A summary of the checked executions: statuses, durations, most common errors."""
    ids, refusal = _selection()
    summary = None if refusal else analyze(ids)
    return _answer(
        "tasks/executions/analysis.html",
        "tasks/executions/_analysis.html",
        422 if refusal else 200,
        refusal=refusal,
        analysis=summary,
    )
