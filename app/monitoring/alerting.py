"""Alerts raised by the monitoring tasks, without repeating one that is still open."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Alert
from app.models.types import utcnow

REPEAT_AFTER = timedelta(hours=1)


def raise_alert(kind: str, title: str, message: str, severity: str = "error") -> Alert | None:
    """Add an alert, unless an unacknowledged one with the same kind and title was raised within
    the last hour (an hourly check must not flood operators). The caller commits, then calls
    ``app.tracking.alerts.dispatch_notifications`` with the new ids."""
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
