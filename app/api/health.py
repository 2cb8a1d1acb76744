"""Health (public: load balancers call it) and Prometheus metrics (viewer: send a token)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
import redis
from flask import Response, current_app
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import func, select, text

from app.api.common import UTCDateTime
from app.api.operations import WorkerSchema
from app.api.stats import QueueSchema, redis_client
from app.auth.access import public, requires
from app.extensions import db
from app.models import ExecutionHourly, Role, TaskExecution
from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS
from app.monitoring.queues import queue_stats
from app.scheduler.store import get_store, projection_state
from app.services.schedule_watch import all_watched
from app.services.statistics import IN_FLIGHT
from app.tracking import quarantine
from app.tracking.heartbeats import live_workers
from app.tracking.stream import backlog, recorder_check
from app.watch.health import late_schedules, stale_after, watcher_check
from app.watch.states import WatchState
from app.watch.watcher import heartbeat_age

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
    items = ma.fields.List(ma.fields.Nested(QueueSchema))


class WorkersCheckSchema(CheckSchema):
    live = ma.fields.List(ma.fields.Nested(WorkerSchema))


class BeatCheckSchema(CheckSchema):
    """Ok only when a beat leads over a complete projection and no schedule is late."""

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
    healthy = ma.fields.Boolean(required=True)
    checks = ma.fields.Nested(ChecksSchema, required=True)
    checked_at = UTCDateTime(required=True)


def blueprints() -> list[Blueprint]:
    return [blp]


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check() or {}
        return {
            "ok": True,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            **detail,
        }
    except Exception as error:  # any failure is a finding, never a 500
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:500]}


def _beat() -> dict[str, Any]:
    store = get_store()
    pipe = store.client.pipeline(transaction=False)
    pipe.get(store.key("lock"))
    pipe.pttl(store.key("lock"))
    holder, ttl_ms = pipe.execute()
    lock_ms = current_app.config.get("SCHEDULER_LOCK_TTL", 10.0) * 1000
    # The leader renews the lock's TTL on every tick, so the time since the last renewal is
    # how long ago beat last ticked.
    ago = round(max(lock_ms - ttl_ms, 0) / 1000, 3) if holder and ttl_ms > 0 else None
    projection = projection_state(store)
    late = late_schedules()
    return {
        # Ok only when a beat leads over a complete projection (an emptied one sends nothing)
        # and no schedule is late.
        "ok": holder is not None and projection["complete"] and not late,
        "lock_holder": holder.decode() if holder else None,
        "last_tick_seconds_ago": ago,
        "projection": projection,
        "late_schedules": late,
    }


def _recorder() -> dict[str, Any]:
    check = recorder_check(redis_client())
    del check["unacknowledged"]  # the same figure as backlog
    return check


def report() -> dict[str, Any]:
    """Every check; healthy when Redis and the database answer."""
    checks: dict[str, Any] = {
        "redis": _timed(lambda: {"ping": bool(redis_client().ping())}),
        "database": _timed(lambda: db.session.execute(text("SELECT 1")) and None),
    }
    if not checks["database"]["ok"]:
        db.session.rollback()
    redis_ok = checks["redis"]["ok"]
    if redis_ok:
        checks["queues"] = _timed(
            lambda: {"items": queue_stats(redis_client())} if checks["database"]["ok"] else None
        )
        checks["workers"] = _timed(lambda: {"live": live_workers(redis_client())})
        checks["beat"] = _timed(_beat)
        checks["recorder"] = _timed(_recorder)
        checks["watch"] = _timed(lambda: watcher_check(redis_client()))
    healthy = checks["redis"]["ok"] and checks["database"]["ok"]
    return {"healthy": healthy, "checks": checks, "checked_at": datetime.now(UTC)}


def public_view(data: dict[str, Any]) -> dict[str, Any]:
    """What an anonymous caller (a load balancer) may read: healthy or not per component, no
    host names, pids, task ids, lock holder or schedule names."""
    checks = {name: {"ok": bool(check.get("ok"))} for name, check in data["checks"].items()}
    return {"healthy": data["healthy"], "checks": checks, "checked_at": data["checked_at"]}


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


def _line(name: str, value: Any, **labels: Any) -> str:
    if labels:
        inner = ",".join(
            f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in labels.items()
        )
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def _quarantine_metrics() -> list[str]:
    try:
        quarantined = quarantine.count(redis_client())
    except redis.RedisError:
        return []
    return [
        "# HELP ewas_tracking_quarantined_events Tracking events the database refused, kept "
        "for an admin.",
        "# TYPE ewas_tracking_quarantined_events gauge",
        _line("ewas_tracking_quarantined_events", quarantined),
    ]


def _schedule_metrics() -> list[str]:
    """Per schedule: its watch state (one series per state, 1 for the current one), how late it
    is and when it last succeeded; and whether the watch itself is alive."""
    out = [
        "# HELP ewas_schedule_state The schedule watch's state of each schedule (1: current).",
        "# TYPE ewas_schedule_state gauge",
    ]
    watched = all_watched()
    for item in watched:
        for state in WatchState:
            value = int(item.assessment.state == state)
            out.append(
                _line("ewas_schedule_state", value, schedule=item.schedule.name, state=state)
            )
    out += [
        "# HELP ewas_schedule_lateness_seconds Seconds since a late run was due (0: not late).",
        "# TYPE ewas_schedule_lateness_seconds gauge",
    ]
    for item in watched:
        found = item.assessment
        value = round(found.overdue_seconds, 3) if found.state == WatchState.LATE else 0
        out.append(_line("ewas_schedule_lateness_seconds", value, schedule=item.schedule.name))
    out += [
        "# HELP ewas_schedule_last_success_timestamp_seconds When its latest successful run ended.",
        "# TYPE ewas_schedule_last_success_timestamp_seconds gauge",
    ]
    out += [
        _line(
            "ewas_schedule_last_success_timestamp_seconds",
            round(item.last_success.timestamp(), 3),
            schedule=item.schedule.name,
        )
        for item in watched
        if item.last_success is not None
    ]
    try:
        age = heartbeat_age(redis_client())
    except redis.RedisError:
        return out
    out += [
        "# HELP ewas_watch_up Whether a schedule watcher checked recently.",
        "# TYPE ewas_watch_up gauge",
        _line("ewas_watch_up", int(age is not None and age <= stale_after())),
    ]
    if age is not None:
        out += [
            "# HELP ewas_watch_last_check_age_seconds Seconds since a watcher last checked.",
            "# TYPE ewas_watch_last_check_age_seconds gauge",
            _line("ewas_watch_last_check_age_seconds", round(age, 3)),
        ]
    return out


def _stream_metrics() -> list[str]:
    """The tracking stream: its length and what the recorders have not acknowledged yet."""
    try:
        found = backlog(redis_client())
    except redis.RedisError:
        return []
    out = [
        "# HELP ewas_tracking_stream_entries Entries in the tracking stream.",
        "# TYPE ewas_tracking_stream_entries gauge",
        _line("ewas_tracking_stream_entries", found["stream_length"]),
        "# HELP ewas_tracking_unacknowledged_entries Stream entries a consumer group has not "
        "acknowledged (pending or not yet delivered).",
        "# TYPE ewas_tracking_unacknowledged_entries gauge",
        _line("ewas_tracking_unacknowledged_entries", found["unacknowledged"]),
        "# HELP ewas_tracking_oldest_unacknowledged_age_seconds Age of the oldest of them "
        "(0: none).",
        "# TYPE ewas_tracking_oldest_unacknowledged_age_seconds gauge",
        _line(
            "ewas_tracking_oldest_unacknowledged_age_seconds",
            found["oldest_unacknowledged_seconds"] or 0,
        ),
    ]
    return out


@requires(Role.VIEWER)
def metrics() -> Response:
    """Prometheus text: executions by status and type, queues, workers, a duration histogram."""
    h = ExecutionHourly
    out = [
        "# HELP ewas_executions_finished_total Executions that reached a final status.",
        "# TYPE ewas_executions_finished_total counter",
    ]
    sums = [
        func.sum(getattr(h, c))
        for c in (
            "success",
            "failure",
            "revoked",
            "duration_count",
            "duration_sum",
            *HISTOGRAM_COLUMNS,
        )
    ]
    rows = db.session.execute(select(h.task_type, *sums).group_by(h.task_type)).all()
    for row in rows:
        for index, status in enumerate(("success", "failure", "revoked")):
            out.append(
                _line(
                    "ewas_executions_finished_total",
                    int(row[index + 1] or 0),
                    status=status,
                    task_type=row[0],
                )
            )
    out += [
        "# HELP ewas_executions_in_flight Executions pending, started or waiting to retry.",
        "# TYPE ewas_executions_in_flight gauge",
    ]
    flight = db.session.execute(
        select(TaskExecution.status, func.count())
        .where(TaskExecution.status.in_(IN_FLIGHT))
        .group_by(TaskExecution.status)
    ).all()
    counted = {str(s): n for s, n in flight}
    out += [
        _line("ewas_executions_in_flight", counted.get(str(s), 0), status=str(s)) for s in IN_FLIGHT
    ]
    out += [
        "# HELP ewas_execution_duration_seconds Run time of finished executions.",
        "# TYPE ewas_execution_duration_seconds histogram",
    ]
    for row in rows:
        cumulative = 0
        for bound, value in zip((*DURATION_BOUNDS, "+Inf"), row[6:], strict=True):
            cumulative += int(value or 0)
            out.append(
                _line(
                    "ewas_execution_duration_seconds_bucket", cumulative, task_type=row[0], le=bound
                )
            )
        out.append(
            _line("ewas_execution_duration_seconds_sum", float(row[5] or 0), task_type=row[0])
        )
        out.append(
            _line("ewas_execution_duration_seconds_count", int(row[4] or 0), task_type=row[0])
        )
    try:
        queues = queue_stats(redis_client())
        workers = live_workers(redis_client())
    except redis.RedisError:
        queues, workers = [], None
    out += ["# HELP ewas_queue_depth Messages waiting in a queue.", "# TYPE ewas_queue_depth gauge"]
    out += [_line("ewas_queue_depth", q["depth"], queue=q["name"]) for q in queues]
    out += [
        "# HELP ewas_queue_latency_seconds Age of the oldest waiting message.",
        "# TYPE ewas_queue_latency_seconds gauge",
    ]
    out += [
        _line("ewas_queue_latency_seconds", q["oldest_age_seconds"] or 0, queue=q["name"])
        for q in queues
    ]
    if workers is not None:
        out += [
            "# HELP ewas_workers Live workers (heartbeats).",
            "# TYPE ewas_workers gauge",
            _line("ewas_workers", len(workers)),
        ]
    out += _quarantine_metrics()
    out += _stream_metrics()
    out += _schedule_metrics()
    body = "\n".join(out) + "\n"
    return Response(
        body, mimetype="text/plain", headers={"Content-Type": "text/plain; version=0.0.4"}
    )
