"""Admin page views."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import select

from app.admin import bp
from app.auth.access import requires
from app.extensions import db
from app.models import AuditEntry, Role
from app.services.audit import audit_query
from app.web.inputs import id_arg, text_arg

AUDIT_PAGE_SIZE = 50
FILTER_MAX_LENGTH = 128


def _filter_arg(name: str) -> str | None:
    """A text filter from the query string; NUL (which PostgreSQL refuses) is dropped."""
    return text_arg(name)[:FILTER_MAX_LENGTH] or None


@bp.get("/audit/")
@requires(Role.ADMIN)
def audit() -> str:
    """The audit log, newest first, filtered by action and user, paged by id."""
    action, username = _filter_arg("action"), _filter_arg("user")
    before = id_arg("before")
    rows = db.session.scalars(
        audit_query(action, username, before).limit(AUDIT_PAGE_SIZE + 1)
    ).all()
    entries, has_more = rows[:AUDIT_PAGE_SIZE], len(rows) > AUDIT_PAGE_SIZE
    actions = db.session.scalars(
        select(AuditEntry.action).distinct().order_by(AuditEntry.action)
    ).all()
    return render_template(
        "admin/audit.html",
        entries=entries,
        next_before=entries[-1].id if has_more else None,
        action=action or "",
        username=username or "",
        actions=actions,
    )
