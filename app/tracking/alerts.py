"""Escalation: alerts for failures of critical tasks and for dead letters, and their notifiers.

Notifications are sent by a task on the monitoring queue (``notify_alert``), never by the worker
that failed or by the recorder inline: a slow or broken webhook cannot hold either up.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

from flask import current_app
from sqlalchemy import insert

from app.extensions import db
from app.models import Alert
from app.models.types import utcnow

log = logging.getLogger(__name__)
NOTIFY_TASK = "task_monitoring.tasks.notify_alert"


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

    type_names = {t.id: t.name for t in db.session.query(TaskType).all()} if failures else {}
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
    type_names = {type_id: name for name, type_id in type_ids.items()}
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


def dispatch_notifications(alert_ids: list[int]) -> None:
    """Queue one notification task per alert (after the alerts are committed)."""
    if not alert_ids or not (
        current_app.config.get("ALERT_WEBHOOK_URL") or current_app.config.get("ALERT_EMAIL_TO")
    ):
        return
    celery = current_app.extensions["celery"]
    for alert_id in alert_ids:
        try:
            celery.send_task(NOTIFY_TASK, args=[alert_id])
        except Exception:
            log.exception("could not queue the notification of alert %s", alert_id)


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
    """Call every configured notifier for ``alert_id``; a failing one is logged, not raised."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
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
    alert.notified_at = utcnow() if sent else alert.notified_at
    alert.notify_error = "; ".join(errors) or None
    db.session.commit()
    return {"alert": alert_id, "sent": sent, "errors": errors}
