"""Scheduled tasks: the list, a schedule's detail page, and the enable, run-now and delete actions.

Actions answer POST with a 303 back to the page they came from and a flash message; an HTMX
toggle from the list gets just the changed row.
"""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.auth.responses import error_response
from app.errors import DomainError
from app.extensions import db
from app.models import Role, ScheduledTask, TaskStatus
from app.models.types import utcnow
from app.paging import BadCursor
from app.scheduler.preview import occurrences
from app.services import schedules
from app.services.schedule_history import history_page, schedule_stats
from app.services.schedule_listing import rows_for, schedules_page, schedules_query
from app.web import bp
from app.web.formatting import status_label
from app.web.fragments import conditional, is_htmx, page_or_fragment
from app.web.inputs import back, get_or_404, posted_from

TEXT_ARG_MAX = 200
ENABLED_FILTERS = {"": None, "yes": True, "no": False}
# The execution detail page, whichever endpoint name it has when present.


@bp.app_template_global()
def run_outcome_label(outcome: str) -> str:
    """A run's outcome in the reader's language, translated once per request (tables repeat)."""
    labels = g.get("run_outcome_labels")
    if labels is None:
        labels = {status.value: status_label(status.value) for status in TaskStatus}
        labels.update(missed=_("missed"), error=_("not sent"), sent=_("sent"), running=_("running"))
        labels.update(skipped=_("skipped (previous run still running)"))
        g.run_outcome_labels = labels
    return labels.get(outcome, outcome)


def get_schedule_or_404(schedule_id: int) -> ScheduledTask:
    return get_or_404(ScheduledTask, schedule_id)


def _text_arg(name: str) -> str | None:
    value = request.args.get(name, "").replace("\x00", "").strip()[:TEXT_ARG_MAX]
    return value or None


def can_act() -> bool:
    """Whether the reader may use the action buttons (operators and admins)."""
    return bool(current_user.is_authenticated and current_user.role.allows(Role.OPERATOR))


def _problem(error: DomainError) -> str:
    details = [m for messages in error.fields.values() for m in messages]
    return " ".join([error.message, *details])


@bp.get("/scheduled/")
@requires(Role.VIEWER)
def scheduled() -> Any:
    """Schedules by name with their timing, next run (reader's timezone), last run and controls."""
    enabled_arg = request.args.get("enabled", "")
    if enabled_arg not in ENABLED_FILTERS:
        return error_response(
            400, "invalid", _("Unknown enabled filter: %(value)s", value=enabled_arg)
        )
    search = _text_arg("q")
    filters = {"q": search or "", "enabled": enabled_arg}
    kept: dict[str, Any] = {k: v for k, v in filters.items() if v}
    after, before = _text_arg("after"), _text_arg("before")
    page = schedules_page(
        schedules_query(search, ENABLED_FILTERS[enabled_arg]), after=after, before=before
    )
    position: dict[str, Any] = {"after": after} if after else {"before": before} if before else {}
    return page_or_fragment(
        "tasks/scheduled/page.html",
        "tasks/scheduled/_table.html",
        listing=page,
        filters=filters,
        kept=kept,
        # this very page: polled with its filters and position, and where actions come back to
        self_url=url_for("web.scheduled", **kept, **position),
        can_act=can_act(),
    )


@bp.get("/scheduled/<int:schedule_id>/")
@requires(Role.VIEWER)
def scheduled_detail(schedule_id: int) -> Any:
    """A schedule's configuration, next runs, performance and paged run history."""
    schedule = get_schedule_or_404(schedule_id)
    cursor = request.args.get("cursor") or None
    try:
        entries, next_cursor = history_page(schedule.id, cursor)
    except BadCursor:
        return error_response(400, "invalid", _("This history page link is not valid."))
    history = {
        "schedule": schedule,
        "entries": entries,
        "cursor": cursor,
        "next_cursor": next_cursor,
    }
    if is_htmx():  # the polled history only: no statistics to compute
        return conditional(render_template("tasks/scheduled/_history.html", **history))
    upcoming = (
        occurrences(schedule, max(utcnow(), schedule.scheduled_from)) if schedule.enabled else []
    )
    page = render_template(
        "tasks/scheduled/detail.html",
        row=rows_for([schedule])[0],
        stats=schedule_stats(schedule.id),
        upcoming=upcoming,
        can_act=can_act(),
        **history,
    )
    return conditional(page)


@bp.post("/scheduled/<int:schedule_id>/toggle/")
@requires(Role.OPERATOR)
def scheduled_toggle(schedule_id: int) -> Any:
    """Enable or disable a schedule (``enabled`` = 1 or 0; without it, the opposite of now)."""
    schedule = get_schedule_or_404(schedule_id)
    wanted = {"1": True, "0": False}.get(request.form.get("enabled", ""), not schedule.enabled)
    problem = None
    try:
        schedules.set_enabled(schedule, wanted)
    except DomainError as error:
        db.session.rollback()
        problem = _(
            "Could not change %(name)s: %(problem)s", name=schedule.name, problem=_problem(error)
        )
    else:
        db.session.commit()
    if is_htmx():
        body = render_template(
            "tasks/scheduled/_row.html",
            row=rows_for([schedule])[0],
            problem=problem,
            next_url=posted_from() or "",
            can_act=True,
        )
        return body
    if problem:
        flash(problem, "error")
    elif wanted:
        flash(_("%(name)s is enabled.", name=schedule.name), "success")
    else:
        flash(_("%(name)s is disabled.", name=schedule.name), "success")
    return redirect(back("web.scheduled"), 303)


@bp.post("/scheduled/<int:schedule_id>/run/")
@requires(Role.OPERATOR)
def scheduled_run(schedule_id: int) -> Response:
    """Send the schedule's task now, tracked as a manual run; its next due time is unchanged."""
    schedule = get_schedule_or_404(schedule_id)
    run = schedules.run_now(schedule)
    db.session.commit()
    if run.error:
        flash(_("Could not send %(name)s: %(error)s", name=schedule.name, error=run.error), "error")
    else:
        flash(
            _("Sent %(name)s now (task id %(task_id)s).", name=schedule.name, task_id=run.task_id),
            "success",
        )
    return redirect(back("web.scheduled_detail", schedule_id=schedule.id), 303)


@bp.route("/scheduled/<int:schedule_id>/delete/", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def scheduled_delete(schedule_id: int) -> Any:
    """Ask to confirm (GET, or a POST without ``confirm=yes``); then delete with its run history."""
    schedule = get_schedule_or_404(schedule_id)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("tasks/scheduled/confirm_delete.html", schedule=schedule)
    name = schedule.name
    schedules.delete(schedule)
    db.session.commit()
    flash(_("%(name)s was deleted.", name=name), "success")
    return redirect(url_for("web.scheduled"), 303)
