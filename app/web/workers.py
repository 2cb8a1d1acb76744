"""Workers page: workers from their heartbeats (never a broadcast ``inspect``), and controls."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import redis
from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange

from app.auth.access import may_operate, requires
from app.errors import DomainError
from app.extensions import db, redis_client
from app.models import Role
from app.monitoring.queues import queue_names
from app.services import workers as service
from app.tracking.heartbeats import INTERVAL, STALE_BEATS, TTL_BEATS
from app.web import bp
from app.web.fragments import conditional, is_htmx

POLL_SECONDS = 10
STATE_LABELS = {
    "live": _l("live"),
    "stale": _l("stale"),
    "stopped": _l("stopped"),
    "lost": _l("lost"),
}
STATE_CLASSES = {"live": "ok", "stale": "warning", "stopped": "disabled", "lost": "error"}


class PoolForm(FlaskForm):
    n = IntegerField(
        _l("Processes"),
        default=1,
        validators=[InputRequired(), NumberRange(1, service.POOL_STEP_MAX)],
    )


class QueueForm(FlaskForm):
    queue = SelectField(_l("Queue"), validate_choice=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue.choices = queue_names()


class ShutdownForm(FlaskForm):
    """No fields: the CSRF token only."""


def _slug(hostname: str) -> str:
    """A stable HTML id for a worker's controls (kept across polls by ``data-hx-preserve``)."""
    return "w-" + hashlib.blake2b(hostname.encode(), digest_size=6).hexdigest()


def _render(errors: dict[tuple[str, str], list[str]] | None = None, status: int = 200) -> Response:
    try:
        current, gone = service.roster(redis_client())
        unavailable = None
    except redis.RedisError:
        current, gone = [], []
        unavailable = _("Redis is not answering: the workers' heartbeats cannot be read.")
        status = 503
    for worker in current + gone:
        worker["slug"] = _slug(worker["hostname"])
        worker["seen_at"] = datetime.fromtimestamp(float(worker["last_seen"]), UTC)
        stopped = worker.get("stopped_at")
        worker["stopped"] = datetime.fromtimestamp(float(stopped), UTC) if stopped else None
    interval = current_app.config.get("WORKER_HEARTBEAT_INTERVAL") or INTERVAL
    context = {
        "current": current,
        "gone": gone,
        "unavailable": unavailable,
        "errors": errors or {},
        "queues": queue_names(),
        "can_control": may_operate(),
        "state_labels": STATE_LABELS,
        "state_classes": STATE_CLASSES,
        "poll_seconds": POLL_SECONDS,
        "interval": interval,
        "stale_after": interval * STALE_BEATS,
        "lost_after": interval * TTL_BEATS,
        "max_step": service.POOL_STEP_MAX,
    }
    template = "tasks/workers/_live.html" if is_htmx() else "tasks/workers/page.html"
    return conditional(render_template(template, **context), status)


@bp.get("/workers/")
@requires(Role.VIEWER)
def workers() -> Response:
    """Live and stale workers with their queues and active tasks; those gone in the last day."""
    return _render()


def _send(name: str, action: str, **arguments: Any) -> Response:
    """Send a control command, then report each worker's reply (or its silence) in a flash."""
    try:
        result = service.control(redis_client(), name, action, **arguments)
    except service.ControlFailed as error:
        db.session.commit()  # keep the audit entry of the failed attempt
        flash(error.message, "error")
        return redirect(url_for("web.workers"), 303)
    except (DomainError, redis.RedisError) as error:
        db.session.rollback()
        flash(getattr(error, "message", None) or _("Redis is not answering."), "error")
        return redirect(url_for("web.workers"), 303)
    db.session.commit()
    if not result.expects_reply:
        flash(_("Shutdown requested: %(name)s stops after its running tasks.", name=name), "info")
    elif not result.answered:
        message = _(
            "%(name)s did not answer within %(seconds)s s: it may be busy or gone, and the "
            "command may still take effect.",
            name=name,
            seconds=service.CONTROL_TIMEOUT,
        )
        flash(message, "warning")
    for hostname, kind, text in result.messages():
        flash(_("%(name)s answered: %(reply)s", name=hostname, reply=text), kind)
    return redirect(url_for("web.workers"), 303)


def _invalid(name: str, form: FlaskForm) -> Response:
    """Re-render the page with the form's errors beside the worker's field (422)."""
    try:
        service.require_live_worker(redis_client(), name)
    except (DomainError, redis.RedisError) as error:
        flash(getattr(error, "message", None) or _("Redis is not answering."), "error")
        return redirect(url_for("web.workers"), 303)
    errors = {(name, field): messages for field, messages in form.errors.items()}
    return _render(errors, 422)


@bp.post("/workers/<string:name>/shutdown/")
@requires(Role.OPERATOR)
def worker_shutdown(name: str) -> Response:
    """Ask a worker to stop once its running tasks are done (warm shutdown)."""
    form = ShutdownForm()
    return _send(name, "shutdown") if form.validate_on_submit() else _invalid(name, form)


@bp.post("/workers/<string:name>/pool/grow/")
@requires(Role.OPERATOR)
def worker_pool_grow(name: str) -> Response:
    """Add ``n`` processes to a worker's pool."""
    form = PoolForm()
    if not form.validate_on_submit():
        return _invalid(name, form)
    return _send(name, "pool_grow", n=form.n.data)


@bp.post("/workers/<string:name>/pool/shrink/")
@requires(Role.OPERATOR)
def worker_pool_shrink(name: str) -> Response:
    """Remove ``n`` idle processes from a worker's pool."""
    form = PoolForm()
    if not form.validate_on_submit():
        return _invalid(name, form)
    return _send(name, "pool_shrink", n=form.n.data)


@bp.post("/workers/<string:name>/consumers/add/")
@requires(Role.OPERATOR)
def worker_add_consumer(name: str) -> Response:
    """Make a worker consume one more of the configured queues."""
    form = QueueForm()
    if not form.validate_on_submit():
        return _invalid(name, form)
    return _send(name, "add_consumer", queue=form.queue.data)


@bp.post("/workers/<string:name>/consumers/cancel/")
@requires(Role.OPERATOR)
def worker_cancel_consumer(name: str) -> Response:
    """Make a worker stop consuming a queue."""
    form = QueueForm()
    if not form.validate_on_submit():
        return _invalid(name, form)
    return _send(name, "cancel_consumer", queue=form.queue.data)
