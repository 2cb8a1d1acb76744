"""Queues page: each queue's depth, latency and consumers (polled), and a 7-day depth trend."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.extensions import redis_client
from app.models import Role
from app.monitoring.queues import queue_names, queue_stats
from app.tracking.heartbeats import live_workers
from app.web import bp, live_poll_seconds
from app.web.fragments import conditional, is_htmx
from app.web.queue_trends import cached_queue_trends

QUEUE_STATES = {
    "empty": ("ok", _l("empty")),
    "waiting": ("pending", _l("waiting")),
    "backlog": ("warning", _l("backlog")),
    "unserved": ("error", _l("no consumer")),
}


def _state(depth: int, consumers: list[str], threshold: int) -> str:
    if depth == 0:
        return "empty"
    if not consumers:
        return "unserved"
    return "backlog" if depth >= threshold else "waiting"


def _live_rows() -> tuple[list[dict[str, Any]], str | None]:
    """Each queue with its depth, oldest message age, live consumers and state."""
    try:
        client = redis_client()
        stats = queue_stats(client)
        workers = live_workers(client)
    except redis.RedisError:
        return [], _("Redis is not answering: queue depths cannot be read.")
    threshold = current_app.config["QUEUE_DEPTH_THRESHOLD"]
    rows = []
    for queue in stats:
        consumers = sorted(w["hostname"] for w in workers if queue["name"] in w.get("queues", []))
        state = _state(queue["depth"], consumers, threshold)
        css, label = QUEUE_STATES[state]
        rows.append({**queue, "consumers": consumers, "state_class": css, "state_label": label})
    return rows, None


@bp.get("/queues/")
@requires(Role.VIEWER)
def queues() -> Response:
    """Depth, oldest message age and consumers of every queue; each queue's 7-day trend."""
    rows, unavailable = _live_rows()
    status = 503 if unavailable else 200
    context = {"rows": rows, "unavailable": unavailable, "poll_seconds": live_poll_seconds()}
    if is_htmx():
        return conditional(render_template("tasks/queues/_depths.html", **context), status)
    trends = cached_queue_trends(redis_client(), queue_names())
    page = render_template(
        "tasks/queues/page.html",
        trends=trends,
        has_snapshots=any(t["covered"] for t in trends),
        **context,
    )
    return conditional(page, status)
