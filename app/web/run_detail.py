"""One run: its steps in order on one time axis, where it failed and why; resume, run again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.auth.access import may_operate, requires
from app.auth.responses import error_response
from app.errors import DomainError, NotFound
from app.models import Role, RunStatus
from app.models.types import utcnow
from app.services import runs
from app.services.runs import RunDetail, StepView
from app.web import bp
from app.web.formatting import status_label
from app.web.fragments import is_htmx, page_or_fragment
from app.web.links import execution_url
from app.web.run_timeline import Axis, step_bar, time_axis

TRACEBACK_LINES = 15  # the end of a traceback: the final exception and the frames that raised it
MAX_DEPTH = 6  # deeper steps are drawn at this indentation (classes depth-0 .. depth-6)
STOPPED = ("failure", "revoked")


@dataclass(frozen=True)
class StepRow:
    """A step as its row shows it."""

    view: StepView
    bar: Markup | None
    attempts: int
    depth: int
    stopped_by: StepView | None  # for a step that did not run: the step that failed before it
    replaced_by: StepView | None  # for a replaced step: the step sent in its place


def traceback_tail(text: str | None, lines: int = TRACEBACK_LINES) -> tuple[int, str]:
    """The last ``lines`` lines of a traceback and how many came before them."""
    if not text:
        return 0, ""
    found = text.rstrip("\n").splitlines()
    return max(len(found) - lines, 0), "\n".join(found[-lines:])


def _stopped_by(view: StepView, by_id: dict[str, StepView], replacements: dict) -> StepView | None:
    """The step whose failure (or cancellation) kept ``view`` from running."""
    seen: set[str] = set()
    after = view.step.after_task_id
    while after in by_id and after not in seen:
        seen.add(after)
        found = by_id[after]
        while found.state == "replaced" and found.step.task_id in replacements:
            seen.add(found.step.task_id)  # a replacement of a replacement... never a cycle
            found = replacements[found.step.task_id]
            if found.step.task_id in seen:
                break
        if found.state in STOPPED:
            return found
        after = by_id[after].step.after_task_id
    return None


def step_rows(detail: RunDetail) -> tuple[list[StepRow], Axis | None]:
    """Each step with its bar on the run's time axis and what links it to the others; the axis."""
    now = utcnow()
    axis = time_axis(detail.steps, now)
    by_id = {v.step.task_id: v for v in detail.steps}
    replacements = {v.step.replaces_task_id: v for v in detail.steps if v.step.replaces_task_id}
    rows = []
    for view in detail.steps:
        execution = view.execution
        tooltip = f"{view.task_name or view.step.task_id} · {status_label(view.state)}"
        rows.append(
            StepRow(
                view=view,
                bar=step_bar(view, axis, now, tooltip) if axis is not None else None,
                attempts=len(execution.attempts or []) if execution is not None else 0,
                depth=min(view.depth, MAX_DEPTH),
                stopped_by=_stopped_by(view, by_id, replacements)
                if view.state == "not_run"
                else None,
                replaced_by=replacements.get(view.step.task_id)
                if view.state == "replaced"
                else None,
            )
        )
    return rows, axis


def _awaited(detail: RunDetail) -> str | None:
    """The task id a resume just sent (``?sent=``) while the recorder has not added it yet.

    Right after a resume the run is still ``failure`` (final) until its new step is recorded;
    the page keeps polling until then, so it sees the run start again on its own.
    """
    sent = request.args.get("sent", "")
    try:
        canonical = str(uuid.UUID(sent))
    except ValueError:
        return None
    if canonical != sent or any(v.step.task_id == sent for v in detail.steps):
        return None
    return sent


def _not_found(run_id: int) -> Response:
    return error_response(404, "not_found", _("No run with id %(id)s.", id=run_id))


@bp.get("/runs/<int:run_id>/")
@requires(Role.VIEWER)
def run_detail(run_id: int) -> Response:
    """A run's steps on one time axis; its live part polls itself until the run is final."""
    try:
        detail = runs.detail(run_id)
    except NotFound:
        return _not_found(run_id)
    failed = detail.failed_step
    execution = failed.execution if failed is not None else None
    omitted, tail = traceback_tail(execution.traceback if execution is not None else None)
    rows, axis = step_rows(detail)
    awaited = _awaited(detail)
    context: dict[str, Any] = {
        "detail": detail,
        "run": detail.run,
        "rows": rows,
        "axis": axis,
        "failed": failed,
        "traceback_omitted": omitted,
        "traceback_tail": tail,
        "final": detail.run.status != RunStatus.RUNNING and awaited is None,
        "poll_url": url_for("web.run_detail", run_id=run_id, sent=awaited),
        "can_act": may_operate() and detail.can_resume and not awaited,
        "polled": is_htmx(),
    }
    return page_or_fragment("tasks/runs/detail.html", "tasks/runs/_live.html", **context)


def _back_to(run_id: int, sent: str | None = None) -> Response:
    return redirect(url_for("web.run_detail", run_id=run_id, sent=sent), 303)


@bp.post("/runs/<int:run_id>/resume")
@requires(Role.OPERATOR)
def run_resume(run_id: int) -> Response:
    """Send the failed step again with its recorded arguments, then the steps that did not run."""
    try:
        sent = runs.resume(run_id)
    except NotFound:
        return _not_found(run_id)
    except DomainError as error:
        flash(error.message, "error")
        return _back_to(run_id)
    flash(
        ngettext(
            "Resumed: %(num)d step was sent again, starting with the failed one.",
            "Resumed: %(num)d steps were sent again, starting with the failed one.",
            len(sent),
        ),
        "success",
    )
    return _back_to(run_id, sent[0] if sent else None)


@bp.post("/runs/<int:run_id>/again")
@requires(Role.OPERATOR)
def run_again(run_id: int) -> Response:
    """Send the run's whole job anew, as a new run."""
    try:
        sent = runs.run_again(run_id)
    except NotFound:
        return _not_found(run_id)
    except DomainError as error:
        flash(error.message, "error")
        return _back_to(run_id)
    message = _("The job was sent again as a new run.")
    link = execution_url(sent[0]) if sent else None
    if link:
        message = Markup('{} <a href="{}">{}</a>').format(message, link, _("Follow its execution"))
    flash(message, "success")
    return _back_to(run_id)
