"""Health (public: load balancers call it; signed-in users and token holders get the details)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app.api.common import UTCDateTime
from app.api.operations import WorkerSchema
from app.api.stats import QueueSchema
from app.auth.access import public
from app.monitoring.health import health

blp = Blueprint("api_health", __name__, url_prefix="/tasks/api/health", description="Health")


class CheckSchema(ma.Schema):
    ok = ma.fields.Boolean(required=True)

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # A check is a dict: a missing "items" must not fall back to dict.items.
        return obj.get(attr, default) if isinstance(obj, dict) else default

    latency_ms = ma.fields.Float()
    error = ma.fields.String(metadata={"description": "why the check failed"})


class RedisCheckSchema(CheckSchema):
    ping = ma.fields.Boolean()


class QueuesCheckSchema(CheckSchema):
    """Not ok when a queue holds more than ``QUEUE_DEPTH_THRESHOLD`` messages."""

    items = ma.fields.List(ma.fields.Nested(QueueSchema))
    over_threshold = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), metadata={"description": "depths"}
    )


class WorkersCheckSchema(CheckSchema):
    """Not ok without a live worker, or when a queue with waiting messages has no consumer."""

    live = ma.fields.List(ma.fields.Nested(WorkerSchema))
    queues_without_worker = ma.fields.List(ma.fields.String())


class BeatCheckSchema(CheckSchema):
    """Ok only when a beat leads over a complete projection and no schedule is late."""

    active = ma.fields.Boolean(metadata={"description": "a beat holds the lock"})
    lock_holder = ma.fields.String(allow_none=True)
    last_tick_seconds_ago = ma.fields.Float(allow_none=True)
    projection = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={"description": "complete, entries, expected, rebuilt_at, runs_waiting"},
    )
    late_schedules = ma.fields.List(ma.fields.String(), metadata={"description": "names"})


class WatchCheckSchema(CheckSchema):
    """Ok when a schedule watcher finished a check within ``stale_after_seconds``."""

    last_check_seconds_ago = ma.fields.Float(allow_none=True)
    stale_after_seconds = ma.fields.Float()


class RecorderCheckSchema(CheckSchema):
    """Not ok when the recorder stopped committing while events wait, or when the backlog passes
    ``TRACKING_BACKLOG_ALERT_ENTRIES`` entries or ``TRACKING_BACKLOG_ALERT_SECONDS`` of age."""

    lag_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "seconds since a recorder last committed"}
    )
    stream_length = ma.fields.Integer(metadata={"description": "entries in the tracking stream"})
    backlog = ma.fields.Integer(
        metadata={"description": "entries some consumer group has not acknowledged"}
    )
    oldest_unacknowledged_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "age of the oldest of them"}
    )
    over_threshold = ma.fields.Boolean()
    quarantined = ma.fields.Integer(metadata={"description": "events refused and quarantined"})


class ChecksSchema(ma.Schema):
    """Redis and the database always; the others only when Redis answers."""

    redis = ma.fields.Nested(RedisCheckSchema, required=True)
    database = ma.fields.Nested(CheckSchema, required=True)
    queues = ma.fields.Nested(QueuesCheckSchema)
    workers = ma.fields.Nested(WorkersCheckSchema)
    beat = ma.fields.Nested(BeatCheckSchema)
    recorder = ma.fields.Nested(RecorderCheckSchema)
    watch = ma.fields.Nested(WatchCheckSchema)


class HealthSchema(ma.Schema):
    healthy = ma.fields.Boolean(
        required=True, metadata={"description": "Redis and the database answer (else 503)"}
    )
    failing = ma.fields.List(
        ma.fields.String(), metadata={"description": "the checks that are not ok"}
    )
    checks = ma.fields.Nested(ChecksSchema, required=True)
    checked_at = UTCDateTime(required=True)


def blueprints() -> list[Blueprint]:
    return [blp]


def report() -> dict[str, Any]:
    """The system health check (app.monitoring.health); ``healthy`` here means this node can
    serve (Redis and the database answer), what a load balancer asks."""
    data = health()
    return {
        "healthy": data["serving"],
        "failing": data["failing"],
        "checks": data["checks"],
        "checked_at": data["checked_at"],
    }


def public_view(data: dict[str, Any]) -> dict[str, Any]:
    """What an anonymous caller (a load balancer) may read: healthy or not per component, no
    host names, pids, task ids, lock holder or schedule names."""
    checks = {name: {"ok": bool(check.get("ok"))} for name, check in data["checks"].items()}
    return {
        "healthy": data["healthy"],
        "failing": data["failing"],
        "checks": checks,
        "checked_at": data["checked_at"],
    }


@blp.route("/")
class Health(MethodView):
    decorators = [public]

    @blp.doc(security=[])  # public: load balancers call it without a token
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="Redis or the database is down")
    def get(self) -> Any:
        """Healthy or not per component; signed-in users and token holders also get the details
        (latencies, queues, live workers, beat and recorder lag)."""
        data = report()
        if not current_user.is_authenticated:
            data = public_view(data)
        return data, (200 if data["healthy"] else 503)
