"""Admin pages under ``/tasks/``: users, API tokens, the audit log and the tracking quarantine."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/tasks")

from app.admin import accounts, views  # noqa: E402,F401  (register the routes on bp)
