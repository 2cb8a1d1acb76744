"""Alerts: raised (failures of critical tasks, dead letters, failed runs, the monitoring checks,
each de-duplicated), and their notifiers. Listing and acknowledging them, operator use cases,
are in app.services.alerts.

Notifications are sent by a task on the monitoring queue (``notify_alert``), never by the worker
that failed or by the recorder inline: a slow or broken webhook cannot hold either up.

The alerts table is the outbox: an alert is committed first, then notified. ``notify`` claims
the row before sending (so two senders never both send it) and sets ``notified_at`` once a
notifier accepted it; a failed attempt sets when the next one is due. ``dispatch_due`` (the
recorder's upkeep) queues again every notification that is due: the alert's sender crashed
between its commit and the dispatch, the queued task was lost, or the notifier was down.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, insert, or_, select, update

from app.database import rowcount
from app.extensions import db
from app.models import Alert
from app.models.types import utcnow

log = logging.getLogger(__name__)
NOTIFY_TASK = "task_monitoring.tasks.notify_alert"
# A claim older than this belongs to a sender that died (a send takes at most ~20 s).
CLAIM_STALE = timedelta(minutes=5)
MAX_RETRY_DELAY = timedelta(hours=1)
MAX_AGE = timedelta(days=1)  # older alerts that were never notified are not sent any more
# A check's alert is not raised again while the same one, unacknowledged, is younger than this.
REPEAT_AFTER = timedelta(hours=1)


def raise_alert(kind: str, title: str, message: str, severity: str = "error") -> Alert | None:
    """Add an alert, unless an unacknowledged one with the same kind and title was raised within
    ``REPEAT_AFTER`` (an hourly check must not flood operators). The caller commits, then calls
    ``dispatch_notifications`` with the new ids."""
    recent = db.session.scalar(
        select(Alert.id).where(
            Alert.kind == kind,
            Alert.title == title[:255],
            Alert.acknowledged_at.is_(None),
            Alert.created_at >= utcnow() - REPEAT_AFTER,
        )
    )
    if recent is not None:
        return None
    alert = Alert(kind=kind, severity=severity, title=title[:255], message=message)
    db.session.add(alert)
    db.session.flush()
    return alert


def prune(max_age_days: int) -> int:
    """Delete alerts older than ``max_age_days``; returns how many. The caller commits."""
    cutoff = utcnow() - timedelta(days=max_age_days)
    return rowcount(db.session.execute(delete(Alert).where(Alert.created_at < cutoff)))


def _setting_set(name: str) -> set[str]:
    value = current_app.config.get(name) or ""
    if isinstance(value, str):
        value = value.split(",")
    return {item.strip() for item in value if item.strip()}


def is_critical(row: dict[str, Any], type_name: str | None) -> bool:
    return row.get("task_name") in _setting_set("CRITICAL_TASK_NAMES") or (
        type_name is not None and type_name in _setting_set("CRITICAL_TASK_TYPES")
    )


def alerts_for(failures: list[dict[str, Any]]) -> list[int]:
    """Create an alert for each newly failed execution that is critical or dead-lettered."""
    from app.models import TaskType

    type_names: dict[int | None, str] = (
        {t.id: t.name for t in db.session.query(TaskType).all()} if failures else {}
    )
    values = []
    for row in failures:
        if row.get("task_name") == NOTIFY_TASK:
            continue  # a failing notifier must not raise alerts about itself, forever
        critical = is_critical(row, type_names.get(row.get("task_type_id")))
        if not (critical or row.get("is_dead_letter")):
            continue
        kind = "critical_failure" if critical else "dead_letter"
        title = (
            f"Critical task failed: {row.get('task_name')}"
            if critical
            else f"Task dead-lettered after exhausting retries: {row.get('task_name')}"
        )
        values.append(
            {
                "created_at": utcnow(),
                "kind": kind,
                "severity": "critical" if critical else "error",
                "title": title[:255],
                "message": row.get("error_message"),
                "task_id": row["task_id"],
                "task_name": row.get("task_name"),
            }
        )
    if not values:
        return []
    return list(db.session.scalars(insert(Alert).returning(Alert.id), values))


def run_alerts(runs: list[dict[str, Any]], type_ids: dict[str, int]) -> list[int]:
    """One alert per run that has just failed, when it is critical or its failure dead-lettered.

    ``runs`` are the run rows app.runs.record reports as newly failed; the alert names the step
    that failed and its error, and points at that step's execution.
    """
    type_names: dict[int | None, str] = {type_id: name for name, type_id in type_ids.items()}
    values = []
    for run in runs:
        step_type = type_names.get(run.get("failed_task_type_id"))
        critical = is_critical({"task_name": run.get("task_name")}, None) or is_critical(
            {"task_name": run.get("failed_step_name")}, step_type
        )
        if not (critical or run.get("dead_letter")):
            continue
        title = f"Run of {run.get('task_name')} failed at {run.get('failed_step_name')}"
        values.append(
            {
                "created_at": utcnow(),
                "kind": "run_failure",
                "severity": "critical" if critical else "error",
                "title": title[:255],
                "message": run.get("error_message"),
                "task_id": run.get("failed_step_task_id"),
                "task_name": run.get("failed_step_name"),
            }
        )
    if not values:
        return []
    return list(db.session.scalars(insert(Alert).returning(Alert.id), values))


def notifiers_configured() -> bool:
    config = current_app.config
    return bool(config.get("ALERT_WEBHOOK_URL") or config.get("ALERT_EMAIL_TO"))


def dispatch_notifications(alert_ids: list[int]) -> None:
    """Queue one notification task per alert (after the alerts are committed). One that cannot
    be queued is left to the outbox (``dispatch_due``)."""
    if not alert_ids or not notifiers_configured():
        return
    celery = current_app.extensions["celery"]
    for alert_id in alert_ids:
        try:
            celery.send_task(NOTIFY_TASK, args=[alert_id])
        except Exception as error:
            log.warning("could not queue the notification of alert %s: %s", alert_id, error)


def retry_delay(attempts: int) -> timedelta:
    """The wait before notification attempt ``attempts + 1``: doubling, up to an hour."""
    base = float(current_app.config.get("ALERT_NOTIFY_RETRY_SECONDS", 15.0))
    return min(MAX_RETRY_DELAY, timedelta(seconds=base * 2 ** min(attempts, 20)))


def dispatch_due(limit: int = 100) -> int:
    """Queue the notifications that are due again; returns how many. Commits.

    Due: not notified, not acknowledged (someone saw it), raised within a day, not claimed by a
    live sender, and either past its retry time or never tried and older than the grace period
    its first dispatch had. Each is given a new due time first, so a pass finding it queued but
    not run yet does not queue it again; two notifications of one alert are harmless anyway:
    the second finds it claimed or notified.
    """
    if not notifiers_configured():
        return 0
    now = utcnow()
    grace = timedelta(seconds=float(current_app.config.get("ALERT_NOTIFY_GRACE_SECONDS", 30.0)))
    due = db.session.execute(
        select(Alert.id, Alert.notify_attempts)
        .where(
            Alert.notified_at.is_(None),
            Alert.acknowledged_at.is_(None),
            Alert.created_at >= now - MAX_AGE,
            or_(Alert.notify_claimed_at.is_(None), Alert.notify_claimed_at < now - CLAIM_STALE),
            or_(
                Alert.notify_due_at <= now,
                and_(Alert.notify_due_at.is_(None), Alert.created_at <= now - grace),
            ),
        )
        .order_by(Alert.created_at)
        .limit(limit)
    ).all()
    for alert_id, attempts in due:
        wait = max(grace, retry_delay(attempts or 0))
        db.session.execute(
            update(Alert).where(Alert.id == alert_id).values(notify_due_at=now + wait)
        )
    db.session.commit()
    dispatch_notifications([alert_id for alert_id, _ in due])
    return len(due)


def claim(alert_id: int) -> bool:
    """Take the right to send ``alert_id`` now (one conditional UPDATE: of two senders racing,
    one gets the row); False when it is notified already or a live sender holds it. Commits."""
    now = utcnow()
    claimed = db.session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.notified_at.is_(None),
            or_(Alert.notify_claimed_at.is_(None), Alert.notify_claimed_at < now - CLAIM_STALE),
        )
        .values(notify_claimed_at=now)
        .returning(Alert.id)
    ).first()
    db.session.commit()
    return claimed is not None


def payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "title": alert.title,
        "message": alert.message,
        "task_id": alert.task_id,
        "task_name": alert.task_name,
        "created_at": alert.created_at.isoformat(),
    }


def send_webhook(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "ewas-task-engine"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def send_email(config: dict[str, Any], body: dict[str, Any]) -> None:
    message = EmailMessage()
    message["Subject"] = f"[EWAS] {body['title']}"
    message["From"] = config.get("ALERT_EMAIL_FROM") or "ewas-task-engine@localhost"
    message["To"] = config["ALERT_EMAIL_TO"]
    message.set_content(json.dumps(body, indent=2))
    with smtplib.SMTP(
        config.get("SMTP_HOST") or "localhost", int(config.get("SMTP_PORT") or 25), timeout=10
    ) as smtp:
        smtp.send_message(message)


def notify(alert_id: int) -> dict[str, Any]:
    """Call every configured notifier for ``alert_id``, once: the row is claimed first. A
    failing notifier is logged, not raised; when none succeeded the next attempt is due later."""
    if db.session.get(Alert, alert_id) is None:
        return {"alert": alert_id, "sent": [], "errors": ["alert no longer exists"]}
    if not claim(alert_id):
        return {"alert": alert_id, "sent": [], "errors": [], "skipped": "notified or claimed"}
    alert = db.session.get(Alert, alert_id)
    if alert is None:  # deleted between the check above and the claim
        return {"alert": alert_id, "sent": [], "errors": ["alert no longer exists"]}
    config = current_app.config
    body, sent, errors = payload(alert), [], []
    notifiers = (
        (
            "webhook",
            config.get("ALERT_WEBHOOK_URL"),
            lambda: send_webhook(config["ALERT_WEBHOOK_URL"], body),
        ),
        ("email", config.get("ALERT_EMAIL_TO"), lambda: send_email(config, body)),
    )
    for name, configured, send in notifiers:
        if not configured:
            continue
        try:
            send()
            sent.append(name)
        except Exception as error:
            log.warning("alert %s: %s notifier failed: %s", alert_id, name, error)
            errors.append(f"{name}: {error}")
    now = utcnow()
    if sent:
        alert.notified_at, alert.notify_due_at = now, None
    elif errors:
        alert.notify_attempts = (alert.notify_attempts or 0) + 1
        alert.notify_due_at = now + retry_delay(alert.notify_attempts - 1)
    alert.notify_claimed_at = None
    alert.notify_error = "; ".join(errors) or None
    db.session.commit()
    return {"alert": alert_id, "sent": sent, "errors": errors}
