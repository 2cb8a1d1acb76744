"""Executions: filtered keyset-paginated list, detail, retry and cancel (single and bulk)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint, abort
from sqlalchemy import Select, literal, select, tuple_

from app.api.common import (
    VIEWER_RULE,
    BulkIdsSchema,
    BulkResultSchema,
    answer_each,
    decode_cursor,
    encode_cursor,
)
from app.api.schemas import (
    AcceptedExecutionSchema,
    CancelSchema,
    ExecutionDetailSchema,
    ExecutionFilterSchema,
    ExecutionPageSchema,
)
from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.models import FINAL_STATUSES, TaskExecution, TaskStatus, TaskType
from app.services.audit import record_audit
from app.tracking.retry import retry_execution

blp = Blueprint(
    "api_executions", __name__, url_prefix="/tasks/api/executions", description="Task executions"
)


def blueprints() -> list[Blueprint]:
    return [blp]


def filtered(args: dict[str, Any]) -> Select[tuple[TaskExecution]]:
    """The executions matching the list filters, unordered."""
    query = select(TaskExecution)
    column = TaskExecution
    if args.get("status"):
        query = query.where(column.status.in_(args["status"]))
    if args.get("task_type"):
        type_id = select(TaskType.id).where(TaskType.name == args["task_type"]).scalar_subquery()
        query = query.where(column.task_type_id == type_id)
    for name, attribute in (
        ("task_name", column.task_name),
        ("queue", column.queue),
        ("source", column.source_id),
        ("variable", column.variable_id),
    ):
        if args.get(name) is not None:
            query = query.where(attribute == args[name])
    if args.get("task_id_prefix"):
        prefix = (
            args["task_id_prefix"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        )
        query = query.where(column.task_id.like(f"{prefix}%", escape="\\"))
    for name, attribute, newer in (
        ("created_from", column.created_at, True),
        ("created_to", column.created_at, False),
        ("started_from", column.started_at, True),
        ("started_to", column.started_at, False),
    ):
        if args.get(name) is not None:
            query = query.where(attribute >= args[name] if newer else attribute < args[name])
    return query


def page(args: dict[str, Any]) -> dict[str, Any]:
    """One page, newest first, by keyset on (created_at, id); never OFFSET."""
    size = args["page_size"]
    key = tuple_(TaskExecution.created_at, TaskExecution.id)
    query = filtered(args)
    direction = "next"
    if args.get("cursor"):
        created_at, row_id, direction = decode_cursor(args["cursor"])
        bound = tuple_(literal(created_at, TaskExecution.created_at.type), literal(row_id))
        query = query.where(key < bound if direction == "next" else key > bound)
    if direction == "next":
        query = query.order_by(TaskExecution.created_at.desc(), TaskExecution.id.desc())
    else:
        query = query.order_by(TaskExecution.created_at.asc(), TaskExecution.id.asc())
    rows = list(db.session.scalars(query.limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    if direction == "prev":
        rows.reverse()
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    has_next = more if direction == "next" else bool(args.get("cursor"))
    has_prev = bool(args.get("cursor")) if direction == "next" else more
    return {
        "items": rows,
        "page_size": size,
        "next_cursor": encode_cursor(last.created_at, last.id, "next")
        if has_next and last
        else None,
        "previous_cursor": (
            encode_cursor(first.created_at, first.id, "prev") if has_prev and first else None
        ),
    }


def get_execution(task_id: str) -> TaskExecution:
    execution = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    if execution is None:
        abort(404, message=_("No execution with task id %(task_id)s.", task_id=task_id[:64]))
    return execution


@blp.route("/")
class Executions(MethodView):
    decorators = VIEWER_RULE

    @blp.arguments(ExecutionFilterSchema, location="query", unknown=ma.RAISE)
    @blp.response(200, ExecutionPageSchema)
    @blp.alt_response(400, description="malformed cursor")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List executions, newest first, filtered, with next/previous cursors."""
        return page(args)


@blp.route("/<string:task_id>/")
class Execution(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, ExecutionDetailSchema)
    def get(self, task_id: str) -> TaskExecution:
        """Everything stored about one execution, with its retries and children."""
        execution = get_execution(task_id)
        retried_by = db.session.scalars(
            select(TaskExecution.task_id).where(TaskExecution.retry_of == task_id).limit(100)
        )
        children = db.session.scalars(
            select(TaskExecution.task_id)
            .where(TaskExecution.root_id == task_id, TaskExecution.task_id != task_id)
            .limit(100)
        )
        # not columns: attached for the response only
        execution.retried_by = list(retried_by)  # type: ignore[attr-defined]
        execution.children = list(children)  # type: ignore[attr-defined]
        return execution


def _retry_one(task_id: str) -> dict[str, Any]:
    """Retry and audit; commits (the new message is sent by the service before it)."""
    original = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    try:
        new_id = retry_execution(task_id)
    except DomainError as error:
        record_audit(
            "execution.retry",
            "execution",
            task_id[:64],
            outcome=error.code,
            details={"message": error.message},
        )
        db.session.commit()
        raise
    record_audit("execution.retry", "execution", task_id, details={"new_task_id": new_id})
    db.session.commit()
    return {
        "task_id": new_id,
        "status": TaskStatus.PENDING.value,
        "task_name": original.task_name if original else None,
        "queue": original.queue if original else None,
        "retry_of": task_id,
        "url": url_for("api_executions.Execution", task_id=new_id),
    }


def _cancel_one(task_id: str) -> dict[str, Any]:
    """Revoke a pending or running execution (terminating it when started); audited."""
    execution = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    if execution is None:
        raise NotFound(_("No execution with task id %(task_id)s.", task_id=task_id[:64]))
    if execution.status in FINAL_STATUSES:
        raise Conflict(_("The execution is already %(status)s.", status=str(execution.status)))
    terminate = execution.status == TaskStatus.STARTED
    previous = str(execution.status)
    record_audit("execution.cancel", "execution", task_id, details={"terminate": terminate})
    db.session.commit()
    current_app.extensions["celery"].control.revoke(task_id, terminate=terminate)
    return {"task_id": task_id, "terminated": terminate, "previous_status": previous}


@blp.route("/<string:task_id>/retry/", methods=["POST"])
@VIEWER_RULE[0]
@blp.response(202, AcceptedExecutionSchema)
@blp.alt_response(409, description="not failed or revoked, or not replayable")
def retry(task_id: str) -> dict[str, Any]:
    """Retry a failed or revoked execution as a new, linked execution."""
    return _retry_one(task_id)


@blp.route("/<string:task_id>/cancel/", methods=["POST"])
@VIEWER_RULE[0]
@blp.response(202, CancelSchema)
@blp.alt_response(409, description="already final")
def cancel(task_id: str) -> dict[str, Any]:
    """Revoke an execution; a running one is terminated."""
    return _cancel_one(task_id)


@blp.route("/bulk/retry/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BulkIdsSchema)
@blp.response(200, BulkResultSchema)
def bulk_retry(body: dict[str, Any]) -> dict[str, Any]:
    """Retry several executions; the answer says what happened to each id."""
    return answer_each(body["task_ids"], lambda t: _retry_one(t).get("task_id"), 202, "accepted")


@blp.route("/bulk/cancel/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BulkIdsSchema)
@blp.response(200, BulkResultSchema)
def bulk_cancel(body: dict[str, Any]) -> dict[str, Any]:
    """Cancel several executions; the answer says what happened to each id."""
    return answer_each(body["task_ids"], lambda t: _cancel_one(t) and None, 202, "accepted")
