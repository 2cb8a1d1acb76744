"""Runs: the filtered keyset-paginated list, one run with its steps, resume and run again."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import VIEWER_RULE
from app.api.run_schemas import (
    PipelineRunDetailSchema,
    PipelineRunFilterSchema,
    PipelineRunPageSchema,
    SentRunSchema,
)
from app.auth.access import requires
from app.models import Role
from app.services import runs

blp = Blueprint("api_runs", __name__, url_prefix="/tasks/api/runs", description="Pipeline runs")


def blueprints() -> list[Blueprint]:
    return [blp]


@blp.route("/")
class Runs(MethodView):
    decorators = VIEWER_RULE

    @blp.arguments(PipelineRunFilterSchema, location="query", unknown=ma.RAISE)
    @blp.response(200, PipelineRunPageSchema)
    @blp.alt_response(400, description="malformed cursor")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List runs, newest first, filtered, with next/previous cursors."""
        return runs.page(args)


@blp.route("/<int:run_id>/")
class Run(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, PipelineRunDetailSchema)
    def get(self, run_id: int) -> Any:
        """One run with its steps in order (planned steps that never ran included)."""
        found = runs.detail(run_id)
        # not a column: attached for the response schema only
        found.run.steps_in_order = found.steps  # type: ignore[attr-defined]
        return found.run


def _sent(run_id: int, task_ids: list[str]) -> dict[str, Any]:
    return {"run_id": run_id, "task_ids": task_ids, "url": url_for("api_runs.Run", run_id=run_id)}


@blp.route("/<int:run_id>/resume/", methods=["POST"])
@requires(Role.OPERATOR)
@blp.response(202, SentRunSchema)
@blp.alt_response(409, description="not failed, or a step's arguments were redacted or cut")
@blp.alt_response(503, description="the broker did not answer; nothing was sent")
def resume(run_id: int) -> dict[str, Any]:
    """Send the failed step again, then the steps that did not run; they join this run."""
    return _sent(run_id, runs.resume(run_id))


@blp.route("/<int:run_id>/again/", methods=["POST"])
@requires(Role.OPERATOR)
@blp.response(202, SentRunSchema)
@blp.alt_response(409, description="a step's arguments were redacted or cut")
@blp.alt_response(503, description="the broker did not answer; nothing was sent")
def run_again(run_id: int) -> dict[str, Any]:
    """Send the whole job anew, as a new run (a scheduled run through its schedule)."""
    return _sent(run_id, runs.run_again(run_id))
