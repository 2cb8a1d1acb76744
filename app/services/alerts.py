"""Alerts as operators see them: filtered lists, and acknowledgement by a named user (audited)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, select, update

from app.bounds import MAX_BIGINT as MAX_ID
from app.extensions import db
from app.models import Alert, User
from app.models.types import utcnow
from app.services.audit import record_audit

STATES = ("open", "acknowledged", "all")
SEVERITIES = ("critical", "error", "warning", "info")


def alerts_query(state: str = "open", severity: str | None = None) -> Select[Alert]:
    """Alerts newest first, by state (open, acknowledged, all) and severity."""
    query = select(Alert).order_by(Alert.id.desc())
    if state == "open":
        query = query.where(Alert.acknowledged_at.is_(None))
    elif state == "acknowledged":
        query = query.where(Alert.acknowledged_at.is_not(None))
    if severity:
        query = query.where(Alert.severity == severity)
    return query


@dataclass
class Acknowledged:
    """Which of the asked ids were acknowledged now, which already were, which do not exist."""

    done: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def acknowledge(ids: Iterable[int], user: User) -> Acknowledged:
    """Mark the open alerts among ``ids`` acknowledged by ``user``; one audit entry per alert.

    One conditional UPDATE: when two operators acknowledge the same alert at once, the first
    one's name is kept and the second is told it was already done.
    """
    asked = list(dict.fromkeys(ids))
    wanted = [i for i in asked if 0 < i <= MAX_ID]
    if not wanted:
        return Acknowledged(missing=asked)
    done = set(
        db.session.scalars(
            update(Alert)
            .where(Alert.id.in_(wanted), Alert.acknowledged_at.is_(None))
            .values(acknowledged_at=utcnow(), acknowledged_by=user.username)
            .returning(Alert.id),
            execution_options={"synchronize_session": False},
        )
    )
    existing = set(db.session.scalars(select(Alert.id).where(Alert.id.in_(wanted))))
    result = Acknowledged()
    for alert_id in asked:
        if alert_id in done:
            record_audit("alert.acknowledge", "alert", alert_id, actor=user)
            result.done.append(alert_id)
        elif alert_id in existing:
            result.already.append(alert_id)
        else:
            result.missing.append(alert_id)
    return result
