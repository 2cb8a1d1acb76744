"""``/metrics``: Prometheus text built with prometheus-client's custom collectors.

Every figure is read when scraped, from the roll-ups, the database and Redis, never from
per-process counters: any web process answers the same for the whole cluster. A part whose
store does not answer (Redis down) is left out rather than failing the scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.auth.access import requires
from app.extensions import db, redis_client
from app.models import ExecutionHourly, Role, TaskExecution
from app.models.statistics import DURATION_BOUNDS, HISTOGRAM_COLUMNS
from app.monitoring.queues import queue_stats
from app.services.schedule_watch import all_watched
from app.services.statistics import IN_FLIGHT
from app.tracking import quarantine
from app.tracking.heartbeats import live_workers
from app.tracking.stream import backlog
from app.watch.health import stale_after
from app.watch.states import WatchState
from app.watch.watcher import heartbeat_age

STATUSES = ("success", "failure", "revoked")


class ExecutionCollector(Collector):
    """Finished executions and their durations (hourly roll-ups), and those in flight."""

    def collect(self) -> Iterator[Metric]:
        h = ExecutionHourly
        columns = ("success", "failure", "revoked", "duration_count", "duration_sum")
        sums = [func.sum(getattr(h, c)) for c in (*columns, *HISTOGRAM_COLUMNS)]
        rows = db.session.execute(select(h.task_type, *sums).group_by(h.task_type)).all()
        finished = CounterMetricFamily(
            "ewas_executions_finished",
            "Executions that reached a final status.",
            labels=["status", "task_type"],
        )
        durations = HistogramMetricFamily(
            "ewas_execution_duration_seconds",
            "Run time of finished executions.",
            labels=["task_type"],
        )
        for task_type, *figures in rows:
            for status, count in zip(STATUSES, figures, strict=False):
                finished.add_metric([status, task_type], int(count or 0))
            cumulative, buckets = 0, []
            bounds = (*(str(bound) for bound in DURATION_BOUNDS), "+Inf")
            for bound, count in zip(bounds, figures[5:], strict=True):
                cumulative += int(count or 0)
                buckets.append((bound, cumulative))
            durations.add_metric([task_type], buckets, sum_value=float(figures[4] or 0))
        yield finished
        yield durations
        in_flight = GaugeMetricFamily(
            "ewas_executions_in_flight",
            "Executions pending, started or waiting to retry.",
            labels=["status"],
        )
        counted = dict(
            db.session.execute(
                select(TaskExecution.status, func.count())
                .where(TaskExecution.status.in_(IN_FLIGHT))
                .group_by(TaskExecution.status)
            ).all()
        )
        for status in IN_FLIGHT:
            in_flight.add_metric([str(status)], counted.get(status, 0))
        yield in_flight


class BrokerCollector(Collector):
    """Queues, live workers, and the tracking stream with its quarantine (all in Redis)."""

    def collect(self) -> Iterator[Metric]:
        client = redis_client()
        try:
            queues = queue_stats(client)
            workers = live_workers(client)
            stream = backlog(client)
            quarantined = quarantine.count(client)
        except redis.RedisError:
            return
        depth = GaugeMetricFamily(
            "ewas_queue_depth", "Messages waiting in a queue.", labels=["queue"]
        )
        latency = GaugeMetricFamily(
            "ewas_queue_latency_seconds", "Age of the oldest waiting message.", labels=["queue"]
        )
        for queue in queues:
            depth.add_metric([queue["name"]], queue["depth"])
            latency.add_metric([queue["name"]], queue["oldest_age_seconds"] or 0)
        yield depth
        yield latency
        yield GaugeMetricFamily("ewas_workers", "Live workers (heartbeats).", value=len(workers))
        yield GaugeMetricFamily(
            "ewas_tracking_quarantined_events",
            "Tracking events the database refused, kept for an admin.",
            value=quarantined,
        )
        yield GaugeMetricFamily(
            "ewas_tracking_stream_entries",
            "Entries in the tracking stream.",
            value=stream["stream_length"],
        )
        yield GaugeMetricFamily(
            "ewas_tracking_unacknowledged_entries",
            "Stream entries a consumer group has not acknowledged (pending or not yet delivered).",
            value=stream["unacknowledged"],
        )
        yield GaugeMetricFamily(
            "ewas_tracking_oldest_unacknowledged_age_seconds",
            "Age of the oldest of them (0: none).",
            value=stream["oldest_unacknowledged_seconds"] or 0,
        )


class ScheduleCollector(Collector):
    """Per schedule: its watch state (one series per state, 1 for the current one), how late it
    is and when it last succeeded; and whether the watch itself is alive."""

    def collect(self) -> Iterator[Metric]:
        watched = all_watched()
        state = GaugeMetricFamily(
            "ewas_schedule_state",
            "The schedule watch's state of each schedule (1: current).",
            labels=["schedule", "state"],
        )
        lateness = GaugeMetricFamily(
            "ewas_schedule_lateness_seconds",
            "Seconds since a late run was due (0: not late).",
            labels=["schedule"],
        )
        success = GaugeMetricFamily(
            "ewas_schedule_last_success_timestamp_seconds",
            "When its latest successful run ended.",
            labels=["schedule"],
        )
        for item in watched:
            name, found = item.schedule.name, item.assessment
            for each in WatchState:
                state.add_metric([name, str(each)], int(found.state == each))
            late = found.state == WatchState.LATE
            lateness.add_metric([name], round(found.overdue_seconds, 3) if late else 0)
            if item.last_success is not None:
                success.add_metric([name], round(item.last_success.timestamp(), 3))
        yield state
        yield lateness
        yield success
        try:
            age = heartbeat_age(redis_client())
        except redis.RedisError:
            return
        yield GaugeMetricFamily(
            "ewas_watch_up",
            "Whether a schedule watcher checked recently.",
            value=int(age is not None and age <= stale_after()),
        )
        if age is not None:
            yield GaugeMetricFamily(
                "ewas_watch_last_check_age_seconds",
                "Seconds since a watcher last checked.",
                value=round(age, 3),
            )


def registry() -> CollectorRegistry:
    """A registry of this engine's collectors only (no process or platform metrics of the web
    process that happens to answer)."""
    found = CollectorRegistry(auto_describe=False)
    for collector in (ExecutionCollector(), BrokerCollector(), ScheduleCollector()):
        found.register(collector)
    return found


@requires(Role.VIEWER)
def metrics() -> Response:
    """Prometheus text: executions by status and type, durations, queues, workers, the tracking
    stream and every schedule's watch state."""
    return Response(generate_latest(registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})
