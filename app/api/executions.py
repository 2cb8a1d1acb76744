"""Executions: filtered keyset-paginated list, detail, retry and cancel (single and bulk)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint

from app.api.common import VIEWER_RULE, BulkIdsSchema, BulkResultSchema, abort
from app.api.schemas import (
    AcceptedExecutionSchema,
    CancelSchema,
    ExecutionDetailSchema,
    ExecutionFilterSchema,
    ExecutionPageSchema,
)
from app.models import TaskExecution, TaskStatus
from app.services import execution_actions, executions
from app.services.bulk import answer_each
from app.services.executions import by_task_id

blp = Blueprint(
    "api_executions", __name__, url_prefix="/tasks/api/executions", description="Task executions"
)


def blueprints() -> list[Blueprint]:
    return [blp]


def get_execution(task_id: str) -> TaskExecution:
    execution = by_task_id(task_id)
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
        return executions.page(args)


@blp.route("/<string:task_id>/")
class Execution(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, ExecutionDetailSchema)
    def get(self, task_id: str) -> TaskExecution:
        """Everything stored about one execution, with its retries and children."""
        execution = get_execution(task_id)
        retried_by = [e.task_id for e in executions.retried_by(task_id)]
        children = [e.task_id for e in executions.children(task_id)]
        # not columns: attached for the response only
        execution.retried_by = retried_by  # type: ignore[attr-defined]
        execution.children = children  # type: ignore[attr-defined]
        return execution


def _retry_one(task_id: str) -> dict[str, Any]:
    """Retry (audited, committed) and describe the new execution."""
    original = by_task_id(task_id)
    new_id = execution_actions.retry(task_id)
    return {
        "task_id": new_id,
        "status": TaskStatus.PENDING.value,
        "task_name": original.task_name if original else None,
        "queue": original.queue if original else None,
        "retry_of": task_id,
        "url": url_for("api_executions.Execution", task_id=new_id),
    }


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
    return asdict(execution_actions.cancel(task_id))


@blp.route("/bulk/retry/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BulkIdsSchema)
@blp.response(200, BulkResultSchema)
def bulk_retry(body: dict[str, Any]) -> dict[str, Any]:
    """Retry several executions; the answer says what happened to each id."""
    return answer_each(body["task_ids"], execution_actions.retry, 202, "accepted")


@blp.route("/bulk/cancel/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BulkIdsSchema)
@blp.response(200, BulkResultSchema)
def bulk_cancel(body: dict[str, Any]) -> dict[str, Any]:
    """Cancel several executions; the answer says what happened to each id."""

    def cancel(task_id: Any) -> None:
        execution_actions.cancel(task_id)

    return answer_each(body["task_ids"], cancel, 202, "accepted")
