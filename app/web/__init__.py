"""The operator pages under ``/tasks/``."""

from flask import Blueprint

bp = Blueprint("web", __name__, url_prefix="/tasks")


@bp.record_once
def _setup(state) -> None:  # type: ignore[no-untyped-def]
    from app.web import formatting
    from app.web.navigation import visible_entries
    from app.web.preferences import LANGUAGE_NAMES

    formatting.init_app(state.app)
    state.app.jinja_env.globals.update(nav_entries=visible_entries, language_names=LANGUAGE_NAMES)


# Importing the view modules registers their routes on bp.
from app.web import (  # noqa: E402,F401
    alerts,
    catalog,
    dashboard,
    dead_letters,
    execution_detail,
    executions,
    export,
    preferences,
    queues,
    scheduled,
    scheduled_edit,
    workers,
)
