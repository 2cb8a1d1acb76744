"""Scheduled tasks: list, create, read, replace, patch, delete, run now (write-through to beat)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.common import VIEWER_RULE, UTCDateTime, existing_id
from app.bounds import MAX_DELAY_SECONDS, MAX_INT, MAX_RETRIES
from app.extensions import db
from app.models import IntervalUnit, MisfirePolicy, OverlapPolicy, ScheduledTask, ScheduleKind
from app.models.schedule import MAX_PAUSE_AFTER_FAILURES
from app.scheduler import service
from app.services import schedules
from app.services.schedule_history import schedule_stats
from app.services.schedule_listing import last_runs
from app.services.schedule_watch import assessments
from app.watch.states import MAX_SECONDS

blp = Blueprint(
    "api_scheduled", __name__, url_prefix="/tasks/api/scheduled", description="Scheduled tasks"
)


def _choices(enum: Any) -> ma.validate.OneOf:
    return ma.validate.OneOf([m.value for m in enum])


class ScheduleInputSchema(ma.Schema):
    """A schedule as sent by clients; the scheduler service checks the rules between fields."""

    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    task = ma.fields.String(required=True, validate=ma.validate.Length(1, 255))
    kind = ma.fields.String(required=True, validate=_choices(ScheduleKind))
    crontab = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    interval_every = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(1, MAX_INT)
    )
    interval_unit = ma.fields.String(allow_none=True, validate=_choices(IntervalUnit))
    run_at = UTCDateTime(allow_none=True)
    timezone = ma.fields.String(load_default="UTC", validate=ma.validate.Length(1, 64))
    args = ma.fields.List(ma.fields.Raw(), load_default=list)
    kwargs = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)
    queue = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100))
    priority = ma.fields.Integer(allow_none=True, strict=True, validate=ma.validate.Range(0, 9))
    max_retries = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(0, MAX_RETRIES)
    )
    retry_backoff_seconds = ma.fields.Float(
        allow_none=True, validate=ma.validate.Range(0, MAX_DELAY_SECONDS)
    )
    chain = ma.fields.List(ma.fields.Dict(keys=ma.fields.String()), load_default=list)
    misfire_policy = ma.fields.String(load_default="run_once", validate=_choices(MisfirePolicy))
    grace_seconds = ma.fields.Integer(
        allow_none=True,
        strict=True,
        validate=ma.validate.Range(1, MAX_SECONDS),
        metadata={"description": "Seconds an occurrence may go unsent before the schedule is "
                  "late; null: 10% of its period, between 1 and 30 minutes"},
    )  # fmt: skip
    max_duration_seconds = ma.fields.Integer(
        allow_none=True,
        strict=True,
        validate=ma.validate.Range(1, MAX_SECONDS),
        metadata={"description": "A run still running after this long is overrunning"},
    )
    overlap_policy = ma.fields.String(
        load_default="allow",
        validate=_choices(OverlapPolicy),
        metadata={"description": "An occurrence due while the previous run still runs: allow "
                  "(sent anyway), skip (recorded as a skipped run) or queue_one (sent when the "
                  "previous run ends; at most one waits, a second is skipped)"},
    )  # fmt: skip
    pause_after_failures = ma.fields.Integer(
        allow_none=True,
        strict=True,
        validate=ma.validate.Range(1, MAX_PAUSE_AFTER_FAILURES),
        metadata={"description": "Disable the schedule (and raise an alert) after this many "
                  "consecutive failed runs; null: never. Enabling it again resumes it"},
    )  # fmt: skip
    enabled = ma.fields.Boolean(load_default=True)
    start_at = UTCDateTime(allow_none=True)
    expires_at = UTCDateTime(allow_none=True)
    descriptions = ma.fields.Dict(
        keys=ma.fields.String(validate=ma.validate.OneOf(["en", "fr", "es", "ar"])),
        values=ma.fields.String(allow_none=True),
        load_default=dict,
    )


class SchedulePatchSchema(ScheduleInputSchema):
    """Only the fields sent are changed (defaults are not applied)."""

    @ma.post_load(pass_original=True)
    def only_sent(self, data: dict[str, Any], original: Any, **_: Any) -> dict[str, Any]:
        return {k: v for k, v in data.items() if isinstance(original, dict) and k in original}


class ScheduleSchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    task = ma.fields.String()
    kind = ma.fields.Function(lambda s: str(s.kind))
    crontab = ma.fields.String(allow_none=True)
    interval_every = ma.fields.Integer(allow_none=True)
    interval_unit = ma.fields.Function(lambda s: str(s.interval_unit) if s.interval_unit else None)
    run_at = UTCDateTime(allow_none=True)
    timezone = ma.fields.String()
    args = ma.fields.Raw()
    kwargs = ma.fields.Raw()
    queue = ma.fields.String(allow_none=True)
    priority = ma.fields.Integer(allow_none=True)
    max_retries = ma.fields.Integer(allow_none=True)
    retry_backoff_seconds = ma.fields.Float(allow_none=True)
    chain = ma.fields.Raw()
    misfire_policy = ma.fields.Function(lambda s: str(s.misfire_policy))
    grace_seconds = ma.fields.Integer(allow_none=True)
    max_duration_seconds = ma.fields.Integer(allow_none=True)
    overlap_policy = ma.fields.Function(lambda s: str(s.overlap_policy or "allow"))
    pause_after_failures = ma.fields.Integer(allow_none=True)
    paused_after_failures = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "set while the schedule is paused after this many consecutive "
                  "failures (cleared when it is enabled again)"},
    )  # fmt: skip
    paused_at = UTCDateTime(allow_none=True)
    enabled = ma.fields.Boolean()
    start_at = UTCDateTime(allow_none=True)
    expires_at = UTCDateTime(allow_none=True)
    descriptions = ma.fields.Function(lambda s: s.descriptions())
    last_run_at = UTCDateTime(allow_none=True)
    total_run_count = ma.fields.Integer()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class LastRunSchema(ma.Schema):
    """The latest occurrence and its outcome: the status of the whole run it started."""

    kind = ma.fields.Function(lambda r: str(r.kind))
    occurrence = UTCDateTime()
    task_id = ma.fields.String(allow_none=True)
    outcome = ma.fields.String(
        metadata={
            "description": "running, success, failure, revoked, missed, skipped, error or sent"
        }
    )
    run_id = ma.fields.Integer(allow_none=True, attribute="pipeline_run_id")
    failed_step = ma.fields.String(allow_none=True)
    error = ma.fields.Function(lambda r: r.error or r.error_message)


class ScheduleStatisticsSchema(ma.Schema):
    """Outcomes of the latest runs (up to 500), each counted by its whole run's status."""

    runs = ma.fields.Integer()
    successes = ma.fields.Integer()
    failures = ma.fields.Integer()
    missed = ma.fields.Integer()
    skipped = ma.fields.Integer(metadata={"description": "not sent: the previous run still ran"})
    send_errors = ma.fields.Integer()
    success_rate = ma.fields.Float(allow_none=True)
    average_seconds = ma.fields.Float(allow_none=True, attribute="average")
    p95_seconds = ma.fields.Float(allow_none=True, attribute="p95")
    top_errors = ma.fields.Function(
        lambda s: [{"error": error, "count": count} for error, count in s.top_errors()]
    )


class WatchSchema(ma.Schema):
    """What the schedule watch says about the schedule now."""

    state = ma.fields.String(
        metadata={"description": "on_time, late, overrunning, failing, paused, disabled or "
                  "never_run"}
    )  # fmt: skip
    cause = ma.fields.String(
        allow_none=True,
        metadata={"description": "late: not_sent (no beat sent it) or not_started (no worker)"},
    )
    occurrence = UTCDateTime(
        allow_none=True, metadata={"description": "the occurrence it is about"}
    )
    expected = UTCDateTime(allow_none=True, metadata={"description": "the next occurrence awaited"})
    overdue_seconds = ma.fields.Float(
        metadata={"description": "late: since the due time; overrunning: past the maximum"}
    )
    grace_seconds = ma.fields.Function(lambda a: a.grace.total_seconds())


class ScheduleWithRunsSchema(ScheduleSchema):
    last_run = ma.fields.Nested(LastRunSchema, allow_none=True, dump_only=True)
    watch = ma.fields.Nested(WatchSchema, dump_only=True)
    statistics = ma.fields.Nested(ScheduleStatisticsSchema, dump_only=True)


class ScheduleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ScheduleWithRunsSchema(exclude=("statistics",))))


class RunSchema(ma.Schema):
    schedule_id = ma.fields.Integer()
    task_id = ma.fields.String(allow_none=True)
    occurrence = UTCDateTime()
    sent_at = UTCDateTime(allow_none=True)
    error = ma.fields.String(allow_none=True)


def blueprints() -> list[Blueprint]:
    return [blp]


def _get(schedule_id: int) -> ScheduledTask:
    return service.get_schedule(existing_id(schedule_id))


@blp.route("/")
class Schedules(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, ScheduleListSchema)
    def get(self) -> dict[str, Any]:
        """Every schedule, by name, with its latest run's outcome."""
        items = list(db.session.scalars(select(ScheduledTask).order_by(ScheduledTask.name)))
        lasts = last_runs([s.id for s in items])
        watched = assessments(items)
        for schedule in items:
            # not columns: attached for the response only
            schedule.last_run = lasts.get(schedule.id)  # type: ignore[attr-defined]
            schedule.watch = watched[schedule.id].assessment  # type: ignore[attr-defined]
        return {"items": items}

    @blp.arguments(ScheduleInputSchema)
    @blp.response(201, ScheduleSchema)
    @blp.alt_response(409, description="the name is taken")
    def post(self, values: dict[str, Any]) -> ScheduledTask:
        """Create a schedule; beat picks it up at once."""
        schedule = schedules.create(values)
        db.session.commit()
        return schedule


@blp.route("/<int:schedule_id>/")
class Schedule(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, ScheduleWithRunsSchema)
    def get(self, schedule_id: int) -> ScheduledTask:
        """One schedule, its latest run's outcome and the statistics of its latest runs."""
        schedule = _get(schedule_id)
        # not columns: attached for the response only
        schedule.last_run = last_runs([schedule.id]).get(schedule.id)  # type: ignore[attr-defined]
        schedule.statistics = schedule_stats(schedule.id)  # type: ignore[attr-defined]
        schedule.watch = assessments([schedule])[schedule.id].assessment  # type: ignore[attr-defined]
        return schedule

    @blp.arguments(ScheduleInputSchema)
    @blp.response(200, ScheduleSchema)
    def put(self, values: dict[str, Any], schedule_id: int) -> ScheduledTask:
        """Replace a schedule's definition (fields left out take their defaults)."""
        schedule = schedules.change(_get(schedule_id), values)
        db.session.commit()
        return schedule

    @blp.arguments(SchedulePatchSchema(partial=True))
    @blp.response(200, ScheduleSchema)
    def patch(self, values: dict[str, Any], schedule_id: int) -> ScheduledTask:
        """Change some fields of a schedule."""
        schedule = schedules.change(_get(schedule_id), values)
        db.session.commit()
        return schedule

    @blp.response(204)
    def delete(self, schedule_id: int) -> None:
        """Delete a schedule and its run history."""
        schedules.delete(_get(schedule_id))
        db.session.commit()


@blp.route("/<int:schedule_id>/run/", methods=["POST"])
@VIEWER_RULE[0]
@blp.response(202, RunSchema)
def run(schedule_id: int) -> Any:
    """Send the schedule's task now; its next due time is unchanged."""
    run = schedules.run_now(_get(schedule_id))
    db.session.commit()
    return run
