"""Admin page views: the audit log and the tracking quarantine."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.admin import bp
from app.auth.access import requires
from app.errors import DomainError
from app.extensions import db, redis_client
from app.models import AuditEntry, Role
from app.paging import keyset_page, url_cursor
from app.services import quarantine as quarantine_service
from app.services.audit import audit_query
from app.web.inputs import Page, id_arg, refused, saved, text_arg

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
    cursor = url_cursor(id_arg("before"), None)
    page = keyset_page(audit_query(action, username), [AuditEntry.id], AUDIT_PAGE_SIZE, cursor)
    actions = db.session.scalars(
        select(AuditEntry.action).distinct().order_by(AuditEntry.action)
    ).all()
    return render_template(
        "admin/audit.html",
        entries=page.rows,
        next_before=page.next.value if page.next else None,
        action=action or "",
        username=username or "",
        actions=actions,
    )


QUARANTINE_PAGE_SIZE = 50


@bp.get("/quarantine/")
@requires(Role.ADMIN)
def quarantine() -> Page:
    """Tracking events the database refused (not an outage), newest first, with their error."""
    try:
        entries, next_before, total = quarantine_service.page(
            redis_client(), request.args.get("before"), QUARANTINE_PAGE_SIZE
        )
    except DomainError as error:
        flash(error.message, "error")
        return render_template("admin/quarantine.html", entries=[], total=None), 503
    return render_template(
        "admin/quarantine.html", entries=entries, next_before=next_before, total=total
    )


def _done(action: Callable[[], str]) -> Response:
    try:
        message = action()
    except DomainError as error:
        return refused(error, url_for("admin.quarantine"))
    return saved(message, url_for("admin.quarantine"))


@bp.post("/quarantine/<entry_id>/discard/")
@requires(Role.ADMIN)
def discard_quarantined(entry_id: str) -> Response:
    """Discard one quarantined event for good."""

    def discard() -> str:
        quarantine_service.discard(redis_client(), entry_id)
        return _("Quarantined event %(id)s discarded.", id=entry_id)

    return _done(discard)


@bp.post("/quarantine/discard-all/")
@requires(Role.ADMIN)
def discard_all_quarantined() -> Response:
    """Discard every quarantined event."""

    def discard_all() -> str:
        number = quarantine_service.discard_all(redis_client())
        return ngettext(
            "%(num)d quarantined event discarded.", "%(num)d quarantined events discarded.", number
        )

    return _done(discard_all)


@bp.post("/quarantine/<entry_id>/resend/")
@requires(Role.ADMIN)
def resend_quarantined(entry_id: str) -> Response:
    """Send one quarantined event to the recorder again (after the cause was fixed)."""

    def resend() -> str:
        quarantine_service.resend(redis_client(), entry_id)
        return _("Quarantined event %(id)s sent to the recorder again.", id=entry_id)

    return _done(resend)
