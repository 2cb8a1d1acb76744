"""The dashboard (spec 7.6): live metrics, trends, system health, recent executions and quick
actions. Each panel is a fragment polled every 30 s; the page includes the same fragments."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.auth.access import may_operate, requires
from app.bounds import parse_id
from app.errors import NotFound
from app.extensions import db, redis_client
from app.models import Role
from app.monitoring.health import health
from app.monitoring.queues import queue_depths
from app.scheduler.service import get_schedule
from app.services import dashboard as figures
from app.services import schedule_watch
from app.services.quick_actions import RETRY_LIMIT, retry_recent_failures
from app.services.runs import latest_by_schedule
from app.services.schedules import run_now
from app.tracking.heartbeats import live_workers
from app.web import bp
from app.web.dashboard_charts import trend_charts
from app.web.formatting import code
from app.web.fragments import conditional, is_htmx
from app.web.links import execution_url


def _redis_figures() -> dict[str, Any]:
    """Queue depths and live workers, or None for each when Redis does not answer."""
    client = redis_client()
    try:
        workers = sorted(live_workers(client), key=lambda w: w.get("hostname") or "")
        return {"queues": queue_depths(client), "workers": workers}
    except redis.RedisError:
        return {"queues": None, "workers": None}


def metrics_context() -> dict[str, Any]:
    return {
        "last_day": figures.last_hours(24),
        "in_flight": figures.in_flight(),
        **_redis_figures(),
    }


def trends_context() -> dict[str, Any]:
    buckets = figures.hourly_trend()
    executions_chart, success_rate_chart = trend_charts(buckets)
    return {
        "executions_chart": executions_chart,
        "success_rate_chart": success_rate_chart,
        "week_total": sum(b.finished for b in buckets),
        "durations": figures.durations_by_type(),
    }


def health_context() -> dict[str, Any]:
    return {
        "checks": health(redis_client(), queue_ages=False)["checks"],
        "open_alerts": figures.open_alerts(),
        "error_rates": figures.failure_warnings(),
        "window_hours": current_app.config["FAILURE_RATE_WINDOW_HOURS"],
    }


def recent_context() -> dict[str, Any]:
    return {"recent": figures.recent_executions()}


RUNS_PANEL_ROWS = 20


def scheduled_runs_context() -> dict[str, Any]:
    """Each enabled schedule with its watch state and latest run, those that need an operator
    first (at most ``RUNS_PANEL_ROWS``; the scheduled page lists every one)."""
    watched = schedule_watch.overview()
    shown = watched.watched[:RUNS_PANEL_ROWS]
    return {
        "watch_overview": watched,
        "scheduled_runs": shown,
        "more_schedules": max(0, watched.enabled - len(shown)),
        "latest_runs": latest_by_schedule([w.schedule.id for w in shown]),
        "can_resume": may_operate(),
        "polled": is_htmx(),
    }


@bp.get("/")
@requires(Role.VIEWER)
def dashboard() -> str:
    """Every panel at once; with JavaScript off, reloading the page refreshes them all."""
    can_act = may_operate()
    return render_template(
        "tasks/dashboard/page.html",
        can_act=can_act,
        schedules=figures.schedule_choices() if can_act else [],
        retry_limit=RETRY_LIMIT,
        **metrics_context(),
        **trends_context(),
        **health_context(),
        **recent_context(),
        **scheduled_runs_context(),
    )


@bp.get("/dashboard/metrics")
@requires(Role.VIEWER)
def dashboard_metrics() -> Response:
    """The last 24 hours by status, what runs and waits now, queues and live workers."""
    return conditional(render_template("tasks/dashboard/_metrics.html", **metrics_context()))


@bp.get("/dashboard/trends")
@requires(Role.VIEWER)
def dashboard_trends() -> Response:
    """Executions and success rate per hour over 7 days; durations per task type."""
    return conditional(render_template("tasks/dashboard/_trends.html", **trends_context()))


@bp.get("/dashboard/health")
@requires(Role.VIEWER)
def dashboard_health() -> Response:
    """Redis, database, beat, recorder, workers, open alerts and failure-rate warnings."""
    return conditional(render_template("tasks/dashboard/_health.html", **health_context()))


@bp.get("/dashboard/recent")
@requires(Role.VIEWER)
def dashboard_recent() -> Response:
    """The newest executions."""
    return conditional(render_template("tasks/dashboard/_recent.html", **recent_context()))


@bp.get("/dashboard/runs")
@requires(Role.VIEWER)
def dashboard_runs() -> Response:
    """Each enabled schedule's latest run, its status and, when it failed, where and why."""
    return conditional(render_template("tasks/dashboard/_runs.html", **scheduled_runs_context()))


def _back() -> Response:
    return redirect(url_for("web.dashboard"), 303)


@bp.post("/dashboard/run-now")
@requires(Role.OPERATOR)
def dashboard_run_now() -> Response:
    """Send the chosen schedule's task now (audited), then come back with a message."""
    chosen = parse_id(request.form.get("schedule_id", "").strip())
    if chosen is None:
        flash(_("Choose a schedule to run."), "error")
        return _back()
    try:
        schedule = get_schedule(chosen)
    except NotFound:
        flash(_("No schedule %(id)s: it may have been deleted.", id=chosen), "error")
        return _back()
    run = run_now(schedule)
    db.session.commit()
    if run.error is not None:
        flash(
            _("%(name)s could not be sent: %(error)s", name=schedule.name, error=run.error),
            "error",
        )
        return _back()
    message = _("%(name)s was sent.", name=schedule.name)
    link = execution_url(run.task_id)
    if link:
        message = Markup('{} <a href="{}">{}</a>').format(message, link, _("Follow its execution"))
    flash(message, "success")
    return _back()


SENT_LINKS = 10


def _new_executions(task_ids: list[str]) -> Markup:
    """Links to the first new executions (short ids), and how many more there are."""
    links = Markup(", ").join(
        Markup('<a href="{}">{}</a>').format(
            url_for("web.execution_detail", task_id=task_id), code(task_id[:8])
        )
        for task_id in task_ids[:SENT_LINKS]
    )
    more = len(task_ids) - SENT_LINKS
    if more > 0:
        links += Markup(" ") + ngettext("and %(num)d more", "and %(num)d more", more)
    return links


@bp.post("/dashboard/retry-failures")
@requires(Role.OPERATOR)
def dashboard_retry_failures() -> Response:
    """Retry every failure of the last hour not retried yet (at most RETRY_LIMIT at a time)."""
    report = retry_recent_failures(hours=1)
    db.session.commit()
    count = len(report.new_task_ids)
    if count:
        sent = ngettext(
            "%(num)d failed execution of the last hour was sent again:",
            "%(num)d failed executions of the last hour were sent again:",
            count,
        )
        flash(Markup("{} {}").format(sent, _new_executions(report.new_task_ids)), "success")
    if report.refused:
        flash(
            ngettext(
                "%(num)d could not be re-run exactly (its arguments were not kept whole).",
                "%(num)d could not be re-run exactly (their arguments were not kept whole).",
                report.refused,
            ),
            "error",
        )
    if report.unroutable:
        flash(
            ngettext(
                "%(num)d was not sent: its queue is not configured.",
                "%(num)d were not sent: their queue is not configured.",
                report.unroutable,
            ),
            "error",
        )
    if report.broker_error:
        flash(_("The broker stopped answering: %(error)s", error=report.broker_error), "error")
    elif report.more:
        flash(_("More failures remain: retry again to send the next %(n)s.", n=RETRY_LIMIT), "info")
    if not (count or report.refused or report.unroutable or report.broker_error):
        flash(_("No failure of the last hour is waiting for a retry."), "info")
    return _back()
