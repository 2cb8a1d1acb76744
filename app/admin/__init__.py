"""Admin pages under ``/tasks/``: the audit log."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/tasks")

from app.admin import views  # noqa: E402,F401  (registers the routes on bp)
