"""The schedule watch in words: each state's label and the reason shown beside it."""

from __future__ import annotations

from flask import g
from flask_babel import gettext as _
from markupsafe import Markup

from app.watch.states import Assessment, WatchState
from app.web import bp
from app.web.formatting import duration, when

ERROR_SHOWN = 120  # characters of a failed run's error in the reason

# Badge colour of each state (engine.css status-* classes).
STATE_CSS: dict[str, str] = {
    WatchState.ON_TIME: "ok",
    WatchState.LATE: "failure",
    WatchState.OVERRUNNING: "warning",
    WatchState.FAILING: "failure",
    WatchState.PAUSED: "disabled",
    WatchState.DISABLED: "disabled",
    WatchState.NEVER_RUN: "pending",
}


@bp.app_template_global()
def watch_state_label(state: str) -> str:
    labels = g.get("watch_state_labels")
    if labels is None:
        labels = {
            WatchState.ON_TIME: _("on time"),
            WatchState.LATE: _("late"),
            WatchState.OVERRUNNING: _("overrunning"),
            WatchState.FAILING: _("failing"),
            WatchState.PAUSED: _("paused"),
            WatchState.DISABLED: _("disabled"),
            WatchState.NEVER_RUN: _("never run"),
        }
        g.watch_state_labels = labels
    return labels.get(state, state)


@bp.app_template_global()
def watch_state_css(state: str) -> str:
    return STATE_CSS.get(state, "pending")


def _code(text: str) -> Markup:
    """Task output and names read left to right, isolated, inside right-to-left sentences."""
    return Markup('<bdi dir="ltr" class="ltr">%s</bdi>') % text


@bp.app_template_global()
def watch_reason(found: Assessment) -> str:
    """Why the schedule needs an operator, e.g. "due 06:00, nothing sent for 12 min 5 s"."""
    state, send = found.state, found.latest_send
    if state == WatchState.LATE and found.cause == "not_started":
        return _(
            "sent for %(time)s, not started for %(duration)s (are workers running?)",
            time=when(found.occurrence, "short"),
            duration=duration(found.overdue_seconds),
        )
    if state == WatchState.LATE:
        return _(
            "due %(time)s, nothing sent for %(duration)s (is a beat running?)",
            time=when(found.occurrence, "short"),
            duration=duration(found.overdue_seconds),
        )
    if state == WatchState.OVERRUNNING:
        return _(
            "still running %(duration)s past its maximum duration",
            duration=duration(found.overdue_seconds),
        )
    if state == WatchState.FAILING and send is not None:
        text = (send.send_error or send.error_message or "").strip().split("\n")[0]
        error = _code(text[:ERROR_SHOWN]) if text else _("no error message")
        # The sentence is ours (trusted); the error and step are escaped into it.
        if send.send_error:
            return Markup(_("the latest run could not be sent: %(error)s")) % {"error": error}
        if send.failed_step:
            sentence = Markup(_("the latest run failed at %(step)s: %(error)s"))
            return sentence % {"step": _code(send.failed_step), "error": error}
        return Markup(_("the latest run failed: %(error)s")) % {"error": error}
    if state == WatchState.PAUSED:
        return _("no occurrence left")
    return ""  # on time, never run, disabled: the next-run column says the rest
