"""The operator pages under ``/tasks/``."""

from flask import Blueprint

bp = Blueprint("web", __name__, url_prefix="/tasks")

from app.web import views  # noqa: E402,F401  (registers the routes on bp)
