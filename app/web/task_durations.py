"""A task's duration distribution: histograms of the last 24 hours and 7 days, p50/p95/p99,
outcomes, and the p95 per day, drawn as inline SVG from the hourly roll-ups."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import format_date
from flask_babel import gettext as _
from markupsafe import Markup

from app.auth.access import requires
from app.models import Role
from app.services import duration_distribution
from app.web import bp
from app.web.charts import Point, Series, bar_chart, line_chart
from app.web.formatting import duration, number
from app.web.inputs import not_found


def _bucket_label(bounds: list[float | None], index: int) -> str:
    high = bounds[index]
    if high is None:
        return _("over %(duration)s", duration=duration(bounds[index - 1]))
    return _("up to %(duration)s", duration=duration(high))


def histogram_chart(window: dict[str, Any], title: str) -> Markup:
    """Bars of the window's durations per bucket, from the first filled bucket to the last."""
    buckets = window["histogram"]
    bounds = [b["le_seconds"] for b in buckets]
    filled = [i for i, b in enumerate(buckets) if b["count"]]
    low, high = (filled[0], filled[-1]) if filled else (0, len(buckets) - 1)
    points = []
    for index in range(low, high + 1):
        label = _bucket_label(bounds, index)
        count = buckets[index]["count"]
        tooltip = _("%(bucket)s: %(count)s executions", bucket=label, count=number(count))
        points.append(Point(label, count, tooltip))
    every = max(1, len(points) // 6)
    return bar_chart(title, points, label_every=every)


def trend_chart(days: list[dict[str, Any]]) -> Markup:
    """The p95 of each day as a line, in the unit that suits its largest value (ms, s or min);
    a day without durations is a gap."""
    top = max((d["p95_seconds"] for d in days if d["p95_seconds"] is not None), default=0.0)
    if top >= 120:
        scale, unit = 60.0, _("min")
    elif top >= 1:
        scale, unit = 1.0, _("s")
    else:
        scale, unit = 0.001, _("ms")
    points = []
    for day in days:
        label = format_date(day["day"], "short")
        value = day["p95_seconds"]
        if value is None:
            points.append(Point(label, None))
            continue
        tooltip = _("%(day)s: p95 %(duration)s", day=label, duration=duration(value))
        points.append(Point(label, round(value / scale, 3), tooltip))
    title = _("95th percentile per day, last 7 days")
    series = [Series(_("95th percentile"), points)]
    return line_chart(title, series, unit=f" {unit}", label_every=1)


@bp.get("/durations/<string:task_name>/")
@requires(Role.VIEWER)
def task_durations(task_name: str) -> str:
    """How long one task takes: distributions over 24 h and 7 days, and the p95 trend."""
    if not duration_distribution.known(task_name):
        not_found()
    data = duration_distribution.distribution(task_name)
    titles = {
        "24h": _("Execution times, last 24 hours"),
        "7d": _("Execution times, last 7 days"),
    }
    windows = [
        {**w, "title": titles[w["window"]], "chart": histogram_chart(w, titles[w["window"]])}
        for w in data["windows"]
    ]
    return render_template(
        "tasks/task_types/durations.html",
        task_name=task_name,
        windows=windows,
        days=data["p95_by_day"],
        trend=trend_chart(data["p95_by_day"]),
    )
