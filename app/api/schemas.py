"""Schemas of executions: list filters, list items, the full record."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.common import MAX_PAGE_SIZE, QueryInt, UTCDateTime
from app.models import TaskStatus
from app.services import argument_search

STATUSES = [s.value for s in TaskStatus]


class ExecutionFilterSchema(ma.Schema):
    """Query arguments of the executions list; unknown arguments are refused (422)."""

    class Meta:
        unknown = ma.RAISE

    status = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(STATUSES)),
        metadata={"description": "one or several statuses (repeat the argument)"},
    )
    task_type = ma.fields.String(validate=ma.validate.Length(1, 64))
    task_name = ma.fields.String(validate=ma.validate.Length(1, 255))
    queue = ma.fields.String(validate=ma.validate.Length(1, 100))
    source = QueryInt()
    variable = QueryInt()
    task_id_prefix = ma.fields.String(validate=ma.validate.Length(1, 64))
    created_from = UTCDateTime()
    created_to = UTCDateTime()
    started_from = UTCDateTime()
    started_to = UTCDateTime()
    cursor = ma.fields.String(validate=ma.validate.Length(1, 200))
    page_size = QueryInt(MAX_PAGE_SIZE, load_default=50)
    arg = ma.fields.List(
        ma.fields.String(),
        metadata={
            "description": "search by argument values (repeat the argument, or separate terms "
            "with spaces; all must match): name=value matches a keyword argument, or a key of "
            "a dict argument at any depth, equal to the value or a list holding it; a value "
            'alone matches it anywhere in args or kwargs. Quote values with spaces (name="a b"); '
            'exact and case-sensitive; a number also matches its text (3 and "3"), as do true, '
            "false and null; numbers beyond 2^53 match as text only. Names of redacted "
            "arguments (passwords, tokens, keys) are refused (422). At most 8 terms, 500 "
            "characters."
        },
    )

    @ma.post_load
    def _argument_terms(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "arg" in data:
            try:
                data["arg"] = argument_search.parse(data["arg"])
            except argument_search.BadArgumentSearch as error:
                raise ma.ValidationError(error.message, "arg") from None
        return data


class ExecutionSchema(ma.Schema):
    """One execution in a list."""

    id = ma.fields.Integer(dump_only=True)
    task_id = ma.fields.String()
    task_name = ma.fields.String(allow_none=True)
    task_type = ma.fields.Function(lambda e: e.task_type.name if e.task_type else None)
    status = ma.fields.Function(lambda e: str(e.status))
    queue = ma.fields.String(allow_none=True)
    worker = ma.fields.String(allow_none=True)
    created_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    duration_seconds = ma.fields.Float(allow_none=True)
    retry_count = ma.fields.Integer()
    source_id = ma.fields.Integer(allow_none=True)
    variable_id = ma.fields.Integer(allow_none=True)
    error_message = ma.fields.String(allow_none=True)
    is_dead_letter = ma.fields.Boolean()
    lost_suspect = ma.fields.Boolean()
    retry_of = ma.fields.String(allow_none=True)


class LogRecordSchema(ma.Schema):
    """One captured log record of the task (INFO and above, oldest dropped past the cap)."""

    time = UTCDateTime()
    level = ma.fields.String()
    logger = ma.fields.String()
    message = ma.fields.String()


class AttemptSchema(ma.Schema):
    run_id = ma.fields.Raw(allow_none=True)
    attempt = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(allow_none=True)
    worker = ma.fields.String(allow_none=True)
    started_at = UTCDateTime(allow_none=True)
    completed_at = UTCDateTime(allow_none=True)
    error_message = ma.fields.String(allow_none=True)
    retry_delay_seconds = ma.fields.Float(allow_none=True)
    cpu_seconds = ma.fields.Float(allow_none=True)
    peak_memory_bytes = ma.fields.Integer(allow_none=True)


class ExecutionDetailSchema(ExecutionSchema):
    """Everything stored about one execution."""

    updated_at = UTCDateTime()
    eta = UTCDateTime(allow_none=True)
    result = ma.fields.Raw(allow_none=True)
    traceback = ma.fields.String(allow_none=True)
    max_retries = ma.fields.Integer(allow_none=True)
    arg1 = ma.fields.String(allow_none=True)
    args = ma.fields.Raw(allow_none=True)
    kwargs = ma.fields.Raw(allow_none=True)
    parent_id = ma.fields.String(allow_none=True)
    root_id = ma.fields.String(allow_none=True)
    schedule_id = ma.fields.Integer(allow_none=True)
    schedule_occurrence = UTCDateTime(allow_none=True)
    run_kind = ma.fields.String(allow_none=True)
    logs = ma.fields.List(ma.fields.Nested(LogRecordSchema), allow_none=True)
    attempts = ma.fields.List(ma.fields.Nested(AttemptSchema(unknown=ma.INCLUDE)), allow_none=True)
    cpu_seconds = ma.fields.Float(allow_none=True)
    peak_memory_bytes = ma.fields.Integer(allow_none=True)
    replayable = ma.fields.Boolean()
    retried_by = ma.fields.List(ma.fields.String())
    children = ma.fields.List(ma.fields.String())


class ExecutionPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ExecutionSchema), required=True)
    page_size = ma.fields.Integer(required=True)
    next_cursor = ma.fields.String(allow_none=True)
    previous_cursor = ma.fields.String(allow_none=True)


class AcceptedExecutionSchema(ma.Schema):
    """A new execution that was sent; its row appears once the recorder stores its first event."""

    task_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    task_name = ma.fields.String(allow_none=True)
    queue = ma.fields.String(allow_none=True)
    retry_of = ma.fields.String(allow_none=True)
    url = ma.fields.String(required=True)


class CancelSchema(ma.Schema):
    task_id = ma.fields.String(required=True)
    terminated = ma.fields.Boolean(required=True)
    previous_status = ma.fields.String(required=True)
