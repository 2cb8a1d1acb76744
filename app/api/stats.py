"""Task types with statistics, a type's time series, and system statistics (from roll-ups)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import redis
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint, abort
from sqlalchemy import select

from app.api.common import VIEWER_RULE, QueryInt, UTCDateTime
from app.extensions import db, redis_client
from app.models import TaskType
from app.monitoring.queues import queue_stats
from app.services import duration_distribution, statistics

blp = Blueprint("api_stats", __name__, url_prefix="/tasks/api", description="Statistics")
MAX_HOURS = 24 * 90


class WindowSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    window_hours = QueryInt(MAX_HOURS, load_default=24)


class SeriesArgsSchema(WindowSchema):
    window_hours = QueryInt(MAX_HOURS, load_default=48)
    bucket = ma.fields.String(load_default="hour", validate=ma.validate.OneOf(["hour", "day"]))


class CountsSchema(ma.Schema):
    success = ma.fields.Integer()
    failure = ma.fields.Integer()
    revoked = ma.fields.Integer()


class SummarySchema(ma.Schema):
    counts = ma.fields.Nested(CountsSchema)
    finished = ma.fields.Integer()
    success_rate = ma.fields.Float(allow_none=True)
    duration_avg_seconds = ma.fields.Float(allow_none=True)
    duration_p95_seconds = ma.fields.Float(allow_none=True)
    duration_p95_estimate = ma.fields.Boolean(
        metadata={
            "description": "true when the p95 is estimated from the duration histogram (more "
            "executions than STATS_EXACT_PERCENTILE_MAX), false when exact"
        }
    )


class TypeStatsSchema(SummarySchema):
    name = ma.fields.String()
    description = ma.fields.String(allow_none=True)


class TypeListSchema(ma.Schema):
    window_hours = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(TypeStatsSchema))


class BucketSchema(SummarySchema):
    start = UTCDateTime()


class SeriesSchema(ma.Schema):
    name = ma.fields.String()
    window_hours = ma.fields.Integer()
    bucket = ma.fields.String()
    buckets = ma.fields.List(ma.fields.Nested(BucketSchema))


class QueueSchema(ma.Schema):
    name = ma.fields.String()
    depth = ma.fields.Integer()
    oldest_age_seconds = ma.fields.Float(allow_none=True)


class ThroughputSchema(ma.Schema):
    hour = UTCDateTime(metadata={"description": "start of the UTC hour"})
    finished = ma.fields.Integer()


class BusiestSchema(ma.Schema):
    task_name = ma.fields.String()
    count = ma.fields.Integer()


class FailingSchema(ma.Schema):
    task_name = ma.fields.String()
    failures = ma.fields.Integer()
    failure_rate = ma.fields.Float(allow_none=True)


class StatisticsSchema(ma.Schema):
    window_hours = ma.fields.Integer()
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    success_rate = ma.fields.Float(allow_none=True)
    duration_avg_seconds = ma.fields.Float(allow_none=True)
    duration_p95_seconds = ma.fields.Float(allow_none=True)
    duration_p95_estimate = ma.fields.Boolean(
        metadata={
            "description": "true when the p95 is estimated from the duration histogram (more "
            "executions than STATS_EXACT_PERCENTILE_MAX), false when exact"
        }
    )
    throughput_per_hour = ma.fields.List(ma.fields.Nested(ThroughputSchema))
    busiest_tasks = ma.fields.List(ma.fields.Nested(BusiestSchema))
    most_failing_tasks = ma.fields.List(ma.fields.Nested(FailingSchema))
    queues = ma.fields.List(ma.fields.Nested(QueueSchema), allow_none=True)


class HistogramBucketSchema(ma.Schema):
    le_seconds = ma.fields.Float(
        allow_none=True,
        metadata={"description": "upper bound of the bucket (null: the open last bucket)"},
    )
    count = ma.fields.Integer(metadata={"description": "durations in the bucket (not cumulative)"})


ESTIMATE = (
    "true when the percentiles are estimated inside the roll-ups' histogram buckets (the task's "
    "types finished more than STATS_EXACT_PERCENTILE_MAX executions), false when exact"
)


class DistributionWindowSchema(ma.Schema):
    window = ma.fields.String(metadata={"description": "24h or 7d"})
    hours = ma.fields.Integer()
    start = UTCDateTime(metadata={"description": "start of the first whole UTC hour counted"})
    counts = ma.fields.Nested(CountsSchema)
    finished = ma.fields.Integer()
    duration_count = ma.fields.Integer()
    duration_avg_seconds = ma.fields.Float(allow_none=True)
    p50_seconds = ma.fields.Float(allow_none=True)
    p95_seconds = ma.fields.Float(allow_none=True)
    p99_seconds = ma.fields.Float(allow_none=True)
    estimate = ma.fields.Boolean(metadata={"description": ESTIMATE})
    histogram = ma.fields.List(ma.fields.Nested(HistogramBucketSchema))


class DailyP95Schema(ma.Schema):
    day = ma.fields.Date(metadata={"description": "UTC day"})
    duration_count = ma.fields.Integer()
    p95_seconds = ma.fields.Float(allow_none=True)
    estimate = ma.fields.Boolean(metadata={"description": ESTIMATE})


class DistributionSchema(ma.Schema):
    task_name = ma.fields.String()
    windows = ma.fields.List(ma.fields.Nested(DistributionWindowSchema))
    p95_by_day = ma.fields.List(
        ma.fields.Nested(DailyP95Schema), metadata={"description": "the last 7 UTC days"}
    )


def blueprints() -> list[Blueprint]:
    return [blp]


def safe_queue_stats() -> list[dict[str, Any]] | None:
    try:
        return queue_stats(redis_client())
    except redis.RedisError:
        return None


@blp.route("/types/")
class Types(MethodView):
    decorators = VIEWER_RULE

    @blp.arguments(WindowSchema, location="query")
    @blp.response(200, TypeListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Task types with counts by status, success rate, average and p95 duration."""
        hours = args["window_hours"]
        summaries = statistics.by_type(hours)
        empty = statistics.summarize(statistics._Row({c.name: 0 for c in statistics.SUMS}))
        items = [
            {"name": t.name, "description": t.description, **summaries.get(t.name, empty)}
            for t in db.session.scalars(select(TaskType).order_by(TaskType.name))
        ]
        return {"window_hours": hours, "items": items}


@blp.route("/types/<string:name>/stats/")
class TypeStats(MethodView):
    decorators = VIEWER_RULE

    @blp.arguments(SeriesArgsSchema, location="query")
    @blp.response(200, SeriesSchema)
    def get(self, args: dict[str, Any], name: str) -> dict[str, Any]:
        """A type's hourly or daily counts, success rate and durations over a window."""
        if db.session.scalar(select(TaskType.id).where(TaskType.name == name)) is None:
            abort(404, message=_("No task type %(name)s.", name=name[:64]))
        buckets = statistics.series(name, args["window_hours"], args["bucket"])
        return {
            "name": name,
            "window_hours": args["window_hours"],
            "bucket": args["bucket"],
            "buckets": buckets,
        }


@blp.route("/tasks/<string:task_name>/durations/")
class TaskDurations(MethodView):
    decorators = VIEWER_RULE

    @blp.response(200, DistributionSchema)
    def get(self, task_name: str) -> dict[str, Any]:
        """A task's execution times over 24 h and 7 days: histogram, p50/p95/p99, outcomes,
        and its p95 per day (from the hourly roll-ups)."""
        if not duration_distribution.known(task_name):
            abort(404, message=_("No task %(name)s.", name=task_name[:64]))
        return duration_distribution.distribution(task_name)


@blp.route("/statistics/")
class Statistics(MethodView):
    decorators = VIEWER_RULE

    @blp.arguments(WindowSchema, location="query")
    @blp.response(200, StatisticsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Totals by status, success rate, throughput, busiest and failing tasks, queues."""
        return {**statistics.overview(args["window_hours"]), "queues": safe_queue_stats()}
