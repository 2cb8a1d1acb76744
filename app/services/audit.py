"""The audit trail: every operator action is recorded with its actor, target and outcome."""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import Select, select

from app.extensions import db
from app.models import AuditEntry, User

SYSTEM_ACTOR = "system"


def _current_actor() -> User | None:
    if has_request_context() and current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def record_audit(
    action: str,
    target_type: str,
    target_id: object = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
    actor: User | None = None,
) -> AuditEntry:
    """Add an audit entry for ``action`` by ``actor`` (default: the signed-in user).

    Like every service it only adds: the caller's commit stores it with the change it describes.
    Actions are dotted verbs, e.g. ``token.create``, ``execution.retry``, ``schedule.update``.
    """
    actor = actor or _current_actor()
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else SYSTEM_ACTOR,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        outcome=outcome,
        details=details,
    )
    db.session.add(entry)
    return entry


def audit_query(action: str | None = None, username: str | None = None) -> Select[AuditEntry]:
    """Entries newest first, filtered (paged by id, app.paging)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if action:
        query = query.where(AuditEntry.action == action)
    if username:
        query = query.where(AuditEntry.actor_name == username)
    return query
