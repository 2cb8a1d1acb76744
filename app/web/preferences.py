"""The reader's language and timezone, kept in the session."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, session
from flask_babel import gettext as _
from flask_babel import refresh
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.bounds import valid_zone
from app.models import Role
from app.web import bp
from app.web.inputs import back

LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español", "ar": "العربية"}


@bp.post("/preferences")
@requires(Role.VIEWER, write=Role.VIEWER)
def preferences() -> Response:
    """Set the language and/or the timezone; unknown values are refused with a message."""
    language = request.form.get("language")
    timezone = request.form.get("timezone")
    if language is not None:
        if language not in current_app.config["LANGUAGES"]:
            flash(_("Unknown language: %(value)s", value=language[:64]), "error")
            return redirect(back("web.dashboard"), 303)
        session["language"] = language
    if timezone is not None:
        if not valid_zone(timezone):
            flash(_("Unknown timezone: %(value)s", value=timezone[:64]), "error")
            return redirect(back("web.dashboard"), 303)
        session["timezone"] = timezone
    refresh()
    return redirect(back("web.dashboard"), 303)
