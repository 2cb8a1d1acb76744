"""The top navigation: one entry per page, shown when its view exists and the user may read it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_login import current_user

from app.models import Role


@dataclass(frozen=True)
class NavEntry:
    endpoint: str
    label: object
    role: Role = Role.VIEWER


NAVIGATION = (
    NavEntry("web.dashboard", _l("Dashboard")),
    NavEntry("web.executions", _l("Executions")),
    NavEntry("web.runs", lazy_pgettext("pipeline runs", "Runs")),
    NavEntry("web.scheduled", _l("Scheduled")),
    NavEntry("web.dead_letters", _l("Dead letters")),
    NavEntry("web.alerts", _l("Alerts")),
    NavEntry("web.workers", _l("Workers")),
    NavEntry("web.queues", _l("Queues")),
    NavEntry("web.task_types", _l("Task types")),
    NavEntry("web.sources", _l("Sources")),
    NavEntry("admin.users", _l("Users"), Role.ADMIN),
    NavEntry("admin.tokens", _l("API tokens"), Role.ADMIN),
    NavEntry("admin.audit", _l("Audit log"), Role.ADMIN),
    NavEntry("admin.quarantine", _l("Quarantine"), Role.ADMIN),
)


def visible_entries() -> list[NavEntry]:
    """The entries the signed-in user can open, in menu order."""
    if not current_user.is_authenticated:
        return []
    views = current_app.view_functions
    return [e for e in NAVIGATION if e.endpoint in views and current_user.role.allows(e.role)]
