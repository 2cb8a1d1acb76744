"""The reader's language and timezone, kept in the session."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import refresh
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.bounds import valid_zone
from app.models import Role
from app.web import bp

LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español", "ar": "العربية"}


def _back() -> str:
    """Where to return: the page the form was on, if it is one of ours."""
    target = request.form.get("next", "")
    if target.startswith("/tasks/") and not target.startswith("//"):
        return target
    return url_for("web.dashboard")


@bp.post("/preferences")
@requires(Role.VIEWER, write=Role.VIEWER)
def preferences() -> Response:
    """Set the language and/or the timezone; unknown values are refused with a message."""
    language = request.form.get("language")
    timezone = request.form.get("timezone")
    if language is not None:
        if language not in current_app.config["LANGUAGES"]:
            flash(_("Unknown language: %(value)s", value=language[:64]), "error")
            return redirect(_back(), 303)
        session["language"] = language
    if timezone is not None:
        if not valid_zone(timezone):
            flash(_("Unknown timezone: %(value)s", value=timezone[:64]), "error")
            return redirect(_back(), 303)
        session["timezone"] = timezone
    refresh()
    return redirect(_back(), 303)
