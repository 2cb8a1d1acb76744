"""The queues page's 7-day depth charts: one SVG per queue, a bar per hour (its maximum depth).

Up to 8 queues x 168 hours of tooltips: calling Babel for each of them cost more than the rest
of the page, so translations, number symbols and day names are looked up once per page and the
per-hour text is built with plain string formatting. The charts only change when a snapshot is
taken (every 5 minutes), so they are kept in Redis under the newest snapshot's id, the hour, the
language and the timezone: one page in a few hundred builds them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime
from typing import Any

import redis
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import func, select

from app.extensions import db
from app.models import QueueSnapshot
from app.models.types import utcnow
from app.monitoring.queue_history import HourMax, hourly_maxima
from app.web.charts import Point, bar_chart
from app.web.dashboard_charts import hour_names
from app.web.formatting import duration_formatter, number_formatter

TREND_HOURS = 7 * 24
LABEL_EVERY = 24
CACHE_KEY = "ewas:web:queue-trends:{}"
CACHE_SECONDS = 600


def hour_texts(hours: list[datetime]) -> tuple[list[str], list[str]]:
    """(axis label, tooltip time) of each hour in the reader's timezone and language."""
    locale, zone = get_locale(), str(get_timezone())
    labels, tips = [], []
    for index, hour in enumerate(hours):
        axis, name = hour_names(locale, zone, hour)  # as the dashboard's charts say them
        labels.append(axis if index % LABEL_EVERY == 0 else "")
        tips.append(name)
    return labels, tips


class _Formats:
    def __init__(self) -> None:
        self.number = number_formatter()
        self.duration = duration_formatter("—")
        self.tooltip = _("%(hour)s: at most %(depth)s messages, oldest waited %(latency)s")


def _chart(
    queue: str, hours: list[HourMax], labels: list[str], tips: list[str], fmt: _Formats
) -> Markup:
    """Hours without messages (or snapshots) draw no bar, which keeps the SVG small."""
    points = []
    for index, hour in enumerate(hours):
        tooltip = ""
        if hour.depth:
            values = {
                "hour": tips[index],
                "depth": fmt.number(hour.depth),
                "latency": fmt.duration(hour.latency_seconds),
            }
            tooltip = fmt.tooltip % values
        points.append(Point(labels[index], hour.depth or None, tooltip))
    title = _("Hourly maximum depth of %(queue)s, last 7 days", queue=queue)
    return bar_chart(title, points, label_every=LABEL_EVERY)


def queue_trends(names: list[str]) -> list[dict[str, Any]]:
    """Each queue's chart, peak depth and how many of its hours have a snapshot."""
    maxima = hourly_maxima(names, TREND_HOURS)
    labels, tips = hour_texts([h.hour for h in next(iter(maxima.values()), [])])
    formats = _Formats()
    return [
        {
            "queue": name,
            "chart": _chart(name, maxima[name], labels, tips, formats),
            "peak": max((h.depth or 0 for h in maxima[name]), default=0),
            "covered": sum(1 for h in maxima[name] if h.depth is not None),
        }
        for name in names
    ]


def _cache_key(names: list[str]) -> str:
    newest = db.session.scalar(select(func.max(QueueSnapshot.id)))
    parts = [newest, utcnow().strftime("%Y%m%d%H"), get_locale(), get_timezone(), *names]
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return CACHE_KEY.format(digest)


def cached_queue_trends(client: redis.Redis, names: list[str]) -> list[dict[str, Any]]:
    """``queue_trends``, from Redis when no snapshot was taken since it was built."""
    key = _cache_key(names)
    cached = None
    with contextlib.suppress(redis.RedisError):
        cached = client.get(key)
    if cached is not None:
        return [{**trend, "chart": Markup(trend["chart"])} for trend in json.loads(cached)]
    trends = queue_trends(names)
    stored = [{**trend, "chart": str(trend["chart"])} for trend in trends]
    with contextlib.suppress(redis.RedisError):
        client.set(key, json.dumps(stored), ex=CACHE_SECONDS)
    return trends
