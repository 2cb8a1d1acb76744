"""Backfill of a schedule: preview the occurrences of a past range, send the chosen ones, and
follow a backfill's progress (operators; the sending is throttled in the background)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from app.api.common import VIEWER_RULE, UTCDateTime, existing_id
from app.extensions import db
from app.scheduler import service
from app.scheduler.backfill import MAX_OCCURRENCES
from app.services import backfill

blp = Blueprint(
    "api_backfill",
    __name__,
    url_prefix="/tasks/api/scheduled",
    description="Backfill: send a schedule's occurrences of a past range",
)

RANGE_HELP = (
    "ISO 8601; without an offset it is read in ``timezone``. The range [start, end) must be in "
    "the past, at most 31 days long and hold at most 1000 occurrences."
)


class BackfillRangeSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    # A string (a naive time is read in ``timezone``), typed date-time like every other time.
    start = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 40),
        metadata={"description": RANGE_HELP, "format": "date-time"},
    )
    end = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 40),
        metadata={"description": RANGE_HELP, "format": "date-time"},
    )
    timezone = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(1, 64),
        metadata={"description": "IANA zone the range is typed in; default: the schedule's"},
    )


class BackfillSendSchema(BackfillRangeSchema):
    occurrences = ma.fields.List(
        UTCDateTime(),
        required=True,
        validate=ma.validate.Length(1, MAX_OCCURRENCES),
        metadata={"description": "The occurrences to send, each one of the range's"},
    )


class BackfillOccurrenceSchema(ma.Schema):
    occurrence = UTCDateTime(attribute="moment")
    already_run = ma.fields.Boolean()
    run_kind = ma.fields.String(
        allow_none=True,
        metadata={"description": "the run covering it: scheduled, catchup, manual or backfill"},
    )
    task_id = ma.fields.String(allow_none=True)


class BackfillPreviewSchema(ma.Schema):
    start = UTCDateTime(attribute="window.start")
    end = UTCDateTime(attribute="window.end")
    timezone = ma.fields.String(attribute="window.timezone")
    to_send = ma.fields.Integer(metadata={"description": "occurrences not run yet"})
    occurrences = ma.fields.List(ma.fields.Nested(BackfillOccurrenceSchema))


class BackfillRunSchema(ma.Schema):
    occurrence = UTCDateTime()
    task_id = ma.fields.String(allow_none=True)
    sent_at = UTCDateTime(allow_none=True)
    error = ma.fields.String(allow_none=True)


class BackfillProgressSchema(ma.Schema):
    backfill_id = ma.fields.Integer(attribute="audit_id")
    start = UTCDateTime()
    end = UTCDateTime()
    chosen = ma.fields.Integer()
    skipped = ma.fields.Integer(metadata={"description": "chosen but already run: not sent"})
    sent = ma.fields.Integer()
    waiting = ma.fields.Integer()
    failed = ma.fields.Integer()
    runs = ma.fields.List(ma.fields.Nested(BackfillRunSchema))


def blueprints() -> list[Blueprint]:
    return [blp]


@blp.route("/<int:schedule_id>/backfill/preview/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BackfillRangeSchema)
@blp.response(200, BackfillPreviewSchema)
def preview(values: dict[str, Any], schedule_id: int) -> Any:
    """The occurrences the schedule would have sent in [start, end), already-run ones marked.

    Operators only (a POST); nothing is written."""
    schedule = service.get_schedule(existing_id(schedule_id))
    return backfill.preview(schedule, values["start"], values["end"], values["timezone"])


@blp.route("/<int:schedule_id>/backfill/", methods=["POST"])
@VIEWER_RULE[0]
@blp.arguments(BackfillSendSchema)
@blp.response(202, BackfillProgressSchema)
def send(values: dict[str, Any], schedule_id: int) -> Any:
    """Send the chosen occurrences of [start, end) not run yet, each once, as backfill runs.

    They are sent in the background, a few a second; follow them at the progress URL."""
    schedule = service.get_schedule(existing_id(schedule_id))
    started = backfill.start(
        schedule, values["start"], values["end"], values["occurrences"], values["timezone"]
    )
    db.session.commit()
    backfill.dispatch(started)
    return backfill.progress(schedule, started.audit_id)


@blp.route("/<int:schedule_id>/backfill/<int:backfill_id>/", methods=["GET"])
@VIEWER_RULE[0]
@blp.response(200, BackfillProgressSchema)
def progress(schedule_id: int, backfill_id: int) -> Any:
    """Where a backfill stands: its runs, sent, waiting or not sent."""
    schedule = service.get_schedule(existing_id(schedule_id))
    return backfill.progress(schedule, existing_id(backfill_id))
