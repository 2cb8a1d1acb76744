"""The gate every request passes: authenticate, apply the view's access rule, check CSRF."""

from __future__ import annotations

from flask import Flask, request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.access import current_decision
from app.auth.identity import authenticated_by_token, bearer_token, forget_previous_caller
from app.auth.responses import error_response, forbidden, unauthorized
from app.extensions import csrf


def guard() -> Response | None:
    """Refuse the request unless the view's rule allows the caller (default deny)."""
    forget_previous_caller()
    if request.routing_exception is not None:
        return None  # 404 / 405: nothing to protect
    if bearer_token(request) is not None and not current_user.is_authenticated:
        # A bad, revoked or malformed token is refused outright, even on public views.
        message = _("The API token is invalid or revoked.")
        return error_response(401, "unauthorized", message)
    decision = current_decision()
    if not decision.allowed:
        return unauthorized() if decision.status == 401 else forbidden()
    if not authenticated_by_token():
        # Bearer tokens are not sent by browsers on their own, so they need no CSRF token.
        csrf.protect()
    return None


def init_app(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # the guard calls csrf.protect() itself
    csrf.init_app(app)
    app.before_request(guard)
