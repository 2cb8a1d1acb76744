"""The alerts page: newest first, filtered, paged by id; the open list polls every 30 s; operators
acknowledge one alert or a selection."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.access import may_operate, requires
from app.extensions import db
from app.models import Alert, Role
from app.paging import keyset_page, url_cursor
from app.services import alerts as alert_service
from app.web import bp, links  # noqa: F401  (links registers execution_url)
from app.web.fragments import page_or_fragment
from app.web.inputs import back, choice_arg, form_ids, get_or_404, id_arg, ids_in

PAGE_SIZE = 50
SEVERITY_LABELS = {
    "critical": _l("critical"),
    "error": _l("error"),
    "warning": _l("warning"),
    "info": _l("info"),
}
KIND_LABELS = {
    "critical_failure": _l("critical task failed"),
    "dead_letter": _l("dead-lettered"),
    "run_failure": _l("pipeline run failed"),
    "lost_execution": _l("execution lost"),
    "schedule_late": _l("schedule late"),
    "schedule_overrunning": _l("schedule overrunning"),
    "schedule_failing": _l("schedule failing"),
    "schedule_resolved": _l("schedule back on time"),
    "schedule_paused": _l("schedule paused after failures"),
    "health": _l("health"),
    "failure_rate": _l("failure rate"),
    "queue_depth": _l("queue depth"),
}
STATE_LABELS = {"open": _l("Open"), "acknowledged": _l("Acknowledged"), "all": _l("All")}


def translated(labels: dict[str, Any]) -> dict[str, str]:
    """Lazy labels translated once per request (a lazy string translates on every use)."""
    return {key: str(label) for key, label in labels.items()}


def _filters() -> dict[str, Any]:
    return {
        "state": choice_arg("state", alert_service.STATES, "open"),
        "severity": choice_arg("severity", alert_service.SEVERITIES),
    }


@bp.get("/alerts/")
@requires(Role.VIEWER)
def alerts() -> Response:
    """Alerts newest first, by state and severity; HTMX polls get the table fragment only."""
    filters = _filters()
    before, after = id_arg("before"), id_arg("after")
    query = alert_service.alerts_query(filters["state"], filters["severity"] or None)
    page = keyset_page(query, [Alert.id], PAGE_SIZE, url_cursor(before, after))
    query_args = {k: v for k, v in filters.items() if v and not (k == "state" and v == "open")}
    return page_or_fragment(
        "tasks/alerts/page.html",
        "tasks/alerts/_table.html",
        listing=page,
        filters=filters,
        query_args=query_args,
        live=before is None and after is None,
        checked=set(ids_in(request.args.getlist("id"))),
        severity_labels=translated(SEVERITY_LABELS),
        kind_labels=translated(KIND_LABELS),
        state_labels=translated(STATE_LABELS),
        can_act=may_operate(),
    )


def _acknowledge(ids: list[int]) -> Response:
    if not ids:
        flash(_("Select at least one alert."), "error")
        return redirect(back("web.alerts"), 303)
    result = alert_service.acknowledge(ids, current_user._get_current_object())
    db.session.commit()
    if result.done:
        count = len(result.done)
        flash(
            ngettext("%(num)d alert acknowledged.", "%(num)d alerts acknowledged.", count),
            "success",
        )
    if result.already:
        flash(
            _(
                "Already acknowledged: %(ids)s.",
                ids=", ".join(f"#{i}" for i in result.already[:20]),
            ),
            "info",
        )
    if result.missing:
        flash(
            _("No such alert: %(ids)s.", ids=", ".join(f"#{i}" for i in result.missing[:20])),
            "error",
        )
    return redirect(back("web.alerts"), 303)


@bp.post("/alerts/<int:alert_id>/acknowledge/")
@requires(Role.OPERATOR)
def acknowledge_alert(alert_id: int) -> Response:
    """Acknowledge one alert, in the signed-in user's name."""
    return _acknowledge([get_or_404(Alert, alert_id).id])


@bp.post("/alerts/acknowledge/")
@requires(Role.OPERATOR)
def acknowledge_alerts() -> Response:
    """Acknowledge the selected alerts (checkboxes named ``id``)."""
    return _acknowledge(form_ids("id"))
