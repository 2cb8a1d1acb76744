"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.auth import bp
from app.auth.access import public, requires
from app.auth.forms import LoginForm
from app.auth.identity import authenticated_by_token
from app.auth.redirects import safe_next
from app.extensions import db, limiter
from app.models import Role
from app.services.audit import record_audit
from app.services.users import authenticate

# Failed attempts counted per (username, address) and per address, never per username alone:
# a limit on the username only would let anyone lock any account out from everywhere.
LOGIN_LIMIT = "10 per minute"  # one username from one address
LOGIN_ADDRESS_LIMIT = "30 per minute"  # any usernames from one address (password spraying)


def _login_username_and_address() -> str:
    username = request.form.get("username", "").strip().lower()[:64]
    return f"login:{get_remote_address()}:{username}"


def _failed(response: Response) -> bool:
    # Only failed attempts count, so people who sign in often are never locked out.
    return response.status_code != 303


@bp.route("/login/", methods=["GET", "POST"])
@public
@limiter.limit(LOGIN_ADDRESS_LIMIT, methods=["POST"], deduct_when=_failed)
@limiter.limit(
    LOGIN_LIMIT, methods=["POST"], deduct_when=_failed, key_func=_login_username_and_address
)
def login() -> Response | str | tuple[str, int]:
    """The sign-in form; on success go to ``next`` (a local path) or the dashboard."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if form.validate_on_submit():
        user = authenticate(form.username.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            record_audit("user.login", "user", user.username, actor=user)
            db.session.commit()
            target = safe_next(form.next.data) or url_for("web.dashboard")
            return redirect(target, code=303)
        form.password.errors = [_("Unknown username or wrong password.")]
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout/")
@requires(Role.VIEWER, write=Role.VIEWER)
def logout() -> Response:
    """End the session, on the server too (a saved cookie no longer works), and go back to the
    sign-in page. A token caller has no session to end."""
    if not authenticated_by_token():
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"), code=303)
