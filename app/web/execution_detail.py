"""One execution: timeline, timing, arguments, result, error, logs, links; retry and cancel."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from app.auth.access import may_operate, requires
from app.auth.responses import error_response
from app.errors import DomainError
from app.extensions import db
from app.models import FINAL_STATUSES, Role, ScheduledTask, TaskExecution, TaskStatus
from app.services import execution_actions, executions, runs
from app.tracking.retry import is_retryable
from app.web import bp
from app.web.formatting import duration
from app.web.fragments import is_htmx, page_or_fragment

LINKS_LIMIT = 50
CHAIN_DEPTH = 10


@dataclass(frozen=True)
class Step:
    """One line of the status timeline."""

    moment: datetime | None
    status: str
    label: str
    worker: str | None = None
    detail: str | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


def _moment(value: Any) -> datetime | None:
    """A timeline time: ISO text (attempts) or epoch seconds (log records)."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        moment = datetime.fromisoformat(str(value))
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timeline(execution: TaskExecution) -> list[Step]:
    """Created, then each run (attempt) with its start and end, from the ``attempts`` JSON."""
    steps = [Step(execution.created_at, "pending", _("Created"))]
    runs = [r for r in execution.attempts or [] if isinstance(r, dict)]
    for run in runs:
        attempt = (run.get("attempt") or 0) + 1
        steps.append(
            Step(
                _moment(run.get("started_at")),
                "started",
                _("Attempt %(number)s started", number=attempt),
                worker=run.get("worker"),
            )
        )
        if run.get("completed_at") or run.get("status") not in (None, "started"):
            delay = run.get("retry_delay_seconds")
            steps.append(
                Step(
                    _moment(run.get("completed_at")),
                    str(run.get("status") or ""),
                    _("Attempt %(number)s ended", number=attempt),
                    detail=_("next try in %(delay)s", delay=duration(delay))
                    if delay is not None and run.get("status") == "retry"
                    else run.get("error_message"),
                    cpu_seconds=run.get("cpu_seconds"),
                    peak_memory_bytes=run.get("peak_memory_bytes"),
                )
            )
    if not runs and execution.started_at:
        steps.append(Step(execution.started_at, "started", _("Started"), execution.worker))
    if not runs and execution.completed_at:
        steps.append(Step(execution.completed_at, str(execution.status), _("Ended")))
    if execution.eta and execution.status in (TaskStatus.PENDING, TaskStatus.RETRY):
        steps.append(Step(execution.eta, "pending", _("Due")))
    return steps


def pretty(value: Any) -> str:
    """JSON for people: indented, keys sorted, non-ASCII kept."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def log_lines(execution: TaskExecution) -> list[dict[str, Any]]:
    records = execution.logs if isinstance(execution.logs, list) else []
    return [
        {
            "moment": _moment(r.get("time")),
            "level": str(r.get("level") or ""),
            "logger": str(r.get("logger") or ""),
            "message": str(r.get("message") or ""),
        }
        for r in records
        if isinstance(r, dict)
    ]


def retry_ancestors(execution: TaskExecution) -> list[TaskExecution]:
    """The executions this one retried, nearest first (each hop is one indexed lookup)."""
    chain: list[TaskExecution] = []
    current = execution
    while current.retry_of and len(chain) < CHAIN_DEPTH:
        found = executions.by_task_id(current.retry_of)
        if found is None or found in chain:
            break
        chain.append(found)
        current = found
    return chain


def schedule_link(schedule_id: int | None) -> tuple[str, str | None] | None:
    """The schedule's name and the URL of its page (None once the schedule is deleted)."""
    if schedule_id is None:
        return None
    schedule = db.session.get(ScheduledTask, schedule_id)
    name = schedule.name if schedule else _("schedule #%(id)s", id=schedule_id)
    url = None
    if schedule:
        url = url_for("web.scheduled_detail", schedule_id=schedule_id)
    return name, url


def _find(task_id: str) -> TaskExecution | None:
    try:
        canonical = str(uuid.UUID(task_id))
    except ValueError:
        return None
    return executions.by_task_id(canonical)


def _not_found(task_id: str) -> Response:
    message = _("No execution with task id %(task_id)s.", task_id=task_id[:64])
    return error_response(404, "not_found", message)


@bp.get("/executions/<task_id>/")
@requires(Role.VIEWER)
def execution_detail(task_id: str) -> Response:
    """Everything stored about one execution; its live part polls itself until final."""
    execution = _find(task_id)
    if execution is None:
        return _not_found(task_id)
    operator = may_operate()
    parent = executions.by_task_id(execution.parent_id) if execution.parent_id else None
    root_id = execution.root_id if execution.root_id not in (None, execution.task_id) else None
    return page_or_fragment(
        "tasks/executions/detail.html",
        "tasks/executions/_live.html",
        execution=execution,
        final=execution.status in FINAL_STATUSES,
        steps=timeline(execution),
        logs=log_lines(execution),
        pretty=pretty,
        retried_from=retry_ancestors(execution),
        retried_by=executions.retried_by(execution.task_id, LINKS_LIMIT),
        parent=parent,
        root=executions.by_task_id(root_id) if root_id and root_id != execution.parent_id else None,
        children=executions.children(execution.task_id, LINKS_LIMIT),
        links_limit=LINKS_LIMIT,
        schedule=schedule_link(execution.schedule_id),
        run=runs.run_of_execution(execution.task_id),
        can_retry=operator and is_retryable(execution),
        cancel_requested=execution.cancel_requested_at is not None
        and execution.status not in FINAL_STATUSES,
        can_cancel=operator
        and execution.status not in FINAL_STATUSES
        and execution.cancel_requested_at is None,
        polled=is_htmx(),
    )


def _back_to(execution: TaskExecution) -> Response:
    return redirect(url_for("web.execution_detail", task_id=execution.task_id), 303)


@bp.post("/executions/<task_id>/retry")
@requires(Role.OPERATOR)
def execution_retry(task_id: str) -> Response:
    """Retry this failed or revoked execution as a new, linked execution."""
    execution = _find(task_id)
    if execution is None:
        return _not_found(task_id)
    try:
        new_id = execution_actions.retry(execution.task_id)
    except DomainError as error:
        flash(error.message, "error")
        return _back_to(execution)
    flash(_("Retry sent as the new execution %(task_id)s.", task_id=new_id), "success")
    return _back_to(execution)


@bp.post("/executions/<task_id>/cancel")
@requires(Role.OPERATOR)
def execution_cancel(task_id: str) -> Response:
    """Cancel this execution: revoke it if waiting, terminate it if running."""
    execution = _find(task_id)
    if execution is None:
        return _not_found(task_id)
    try:
        outcome = execution_actions.cancel(execution.task_id)
    except DomainError as error:
        flash(error.message, "error")
        return _back_to(execution)
    if outcome.terminated:
        flash(_("Cancel sent: the worker terminates the running task."), "success")
    else:
        flash(
            _("Cancel sent: the task will not run; it shows as revoked once a worker drops it."),
            "success",
        )
    return _back_to(execution)
