"""Backfill a schedule from its page: a range (in the schedule's timezone) -> its occurrences,
already-run ones marked, checkboxes -> send -> the backfill's progress, polled while it runs.

Operators only. A bad range is a 400 page with the problem beside its field (for HTMX, the
fragment with the problem, as HTMX swaps no 4xx answer); nothing is written then.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.errors import DomainError
from app.extensions import db
from app.i18n import select_timezone
from app.models import Role, ScheduledTask
from app.services import backfill
from app.web import bp
from app.web.fragments import conditional, is_htmx
from app.web.schedule_form import in_zone
from app.web.scheduled import get_schedule_or_404

FIELD_MAX = 64


def _typed(source: Any, name: str, default: str = "") -> str:
    return (source.get(name) or default).replace("\x00", "")[:FIELD_MAX].strip()


def _range(source: Any, schedule: ScheduledTask) -> dict[str, str]:
    """The range as typed (query string or form); the schedule's timezone by default."""
    return {
        "start": _typed(source, "start"),
        "end": _typed(source, "end"),
        "timezone": _typed(source, "timezone", schedule.timezone),
    }


def _page(
    schedule: ScheduledTask,
    values: dict[str, str],
    preview: backfill.Preview | None = None,
    error: DomainError | None = None,
    fragment: bool = False,
) -> Response:
    context = {
        "schedule": schedule,
        "values": values,
        "preview": preview,
        "message": error.message if error else None,
        "errors": error.fields if error else {},
        "in_zone": in_zone,
        "user_timezone": select_timezone(),
    }
    template = (
        "tasks/scheduled/_backfill_list.html" if fragment else "tasks/scheduled/backfill.html"
    )
    # HTMX swaps no 4xx answer: a fragment or a boosted form gets its problem with a 200.
    status = 200 if error is None or fragment or request.headers.get("HX-Request") else 400
    return conditional(render_template(template, **context), status)


@bp.get("/scheduled/<int:schedule_id>/backfill/")
@requires(Role.OPERATOR)
def scheduled_backfill(schedule_id: int) -> Response:
    """The range form; with ``start`` and ``end`` also the occurrences to choose from."""
    schedule = get_schedule_or_404(schedule_id)
    values = _range(request.args, schedule)
    listed = "start" in request.args or "end" in request.args
    if not listed:
        return _page(schedule, values)
    try:
        preview = backfill.preview(schedule, values["start"], values["end"], values["timezone"])
    except DomainError as error:
        return _page(schedule, values, error=error, fragment=is_htmx())
    return _page(schedule, values, preview, fragment=is_htmx())


@bp.post("/scheduled/<int:schedule_id>/backfill/")
@requires(Role.OPERATOR)
def scheduled_backfill_send(schedule_id: int) -> Response:
    """Send the checked occurrences (not run yet) in the background; then their progress."""
    schedule = get_schedule_or_404(schedule_id)
    values = _range(request.form, schedule)
    chosen = request.form.getlist("occurrences")
    try:
        started = backfill.start(
            schedule, values["start"], values["end"], chosen, values["timezone"]
        )
    except DomainError as error:
        db.session.rollback()
        try:
            preview = backfill.preview(schedule, values["start"], values["end"], values["timezone"])
        except DomainError:
            preview = None
        return _page(schedule, values, preview, error=error)
    db.session.commit()
    backfill.dispatch(started)
    target = url_for(
        "web.scheduled_backfill_progress", schedule_id=schedule.id, backfill_id=started.audit_id
    )
    return redirect(target, 303)


@bp.get("/scheduled/<int:schedule_id>/backfill/<int:backfill_id>/")
@requires(Role.OPERATOR)
def scheduled_backfill_progress(schedule_id: int, backfill_id: int) -> Any:
    """A backfill's runs: sent, waiting or not sent (refreshed every 2 s while some wait)."""
    schedule = get_schedule_or_404(schedule_id)
    try:
        state = backfill.progress(schedule, backfill_id)
    except DomainError:
        abort(404)
    template = (
        "tasks/scheduled/_backfill_progress.html"
        if is_htmx()
        else "tasks/scheduled/backfill_progress.html"
    )
    body = render_template(template, schedule=schedule, progress=state, in_zone=in_zone)
    return conditional(body)
