"""Schemas of runs: list filters, list items, one run with its steps, a resume's answer."""

from __future__ import annotations

import marshmallow as ma

from app.api.common import MAX_PAGE_SIZE, QueryInt, UTCDateTime
from app.models import RunStatus

RUN_STATUSES = [s.value for s in RunStatus]


class PipelineRunFilterSchema(ma.Schema):
    """Query arguments of the runs list; unknown arguments are refused (422)."""

    class Meta:
        unknown = ma.RAISE

    schedule = QueryInt()
    status = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(RUN_STATUSES)),
        metadata={"description": "one or several statuses (repeat the argument)"},
    )
    task_name = ma.fields.String(validate=ma.validate.Length(1, 255))
    created_from = UTCDateTime()
    created_to = UTCDateTime()
    cursor = ma.fields.String(validate=ma.validate.Length(1, 200))
    page_size = QueryInt(MAX_PAGE_SIZE, load_default=50)


class PipelineRunSchema(ma.Schema):
    """One run in a list: what it is, where it stands, where it failed."""

    id = ma.fields.Integer(dump_only=True)
    root_task_id = ma.fields.String()
    task_name = ma.fields.String(allow_none=True)
    status = ma.fields.Function(lambda r: str(r.status))
    schedule_id = ma.fields.Integer(allow_none=True)
    schedule_occurrence = UTCDateTime(allow_none=True)
    run_kind = ma.fields.String(allow_none=True)
    created_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    finished_at = UTCDateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    steps_total = ma.fields.Integer()
    steps_succeeded = ma.fields.Integer()
    steps_failed = ma.fields.Integer()
    steps_running = ma.fields.Integer()
    steps_not_run = ma.fields.Integer()
    failed_step_task_id = ma.fields.String(allow_none=True)
    failed_step_name = ma.fields.String(allow_none=True)
    error_message = ma.fields.String(allow_none=True)


class PipelineRunStepSchema(ma.Schema):
    """A step in run order; ``state`` is its execution's status, or waiting, not_run, replaced."""

    task_id = ma.fields.Function(lambda s: s.step.task_id)
    task_name = ma.fields.String(allow_none=True)
    origin = ma.fields.Function(lambda s: str(s.step.origin))
    state = ma.fields.String()
    depth = ma.fields.Integer()
    after_task_id = ma.fields.Function(lambda s: s.step.after_task_id)
    replaces_task_id = ma.fields.Function(lambda s: s.step.replaces_task_id)
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    attempts = ma.fields.Function(lambda s: len(s.execution.attempts or []) if s.execution else 0)
    worker = ma.fields.Function(lambda s: s.execution.worker if s.execution else None)
    error_message = ma.fields.Function(lambda s: s.execution.error_message if s.execution else None)


class PipelineRunDetailSchema(PipelineRunSchema):
    steps = ma.fields.List(ma.fields.Nested(PipelineRunStepSchema), attribute="steps_in_order")


class PipelineRunPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PipelineRunSchema), required=True)
    page_size = ma.fields.Integer(required=True)
    next_cursor = ma.fields.String(allow_none=True)
    previous_cursor = ma.fields.String(allow_none=True)


class SentRunSchema(ma.Schema):
    """What a resume or a run-again sent: the new task ids, first step first."""

    run_id = ma.fields.Integer(
        required=True,
        metadata={"description": "the run resumed, or the run sent again (which starts a new one)"},
    )
    task_ids = ma.fields.List(ma.fields.String(), required=True)
    url = ma.fields.String(required=True)
