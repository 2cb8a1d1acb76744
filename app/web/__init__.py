"""The operator pages under ``/tasks/``."""

from flask import Blueprint, current_app
from flask.blueprints import BlueprintSetupState

bp = Blueprint("web", __name__, url_prefix="/tasks")


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    from app.web import formatting
    from app.web.navigation import visible_entries
    from app.web.preferences import LANGUAGE_NAMES

    formatting.init_app(state.app)
    state.app.jinja_env.globals.update(
        nav_entries=visible_entries,
        language_names=LANGUAGE_NAMES,
        live_poll_seconds=live_poll_seconds,
    )


def live_poll_seconds() -> int:
    """Seconds between two polls of a live fragment: ``data-hx-trigger="every {{ ... }}s"``.

    A global function rather than a context variable, so macros imported without context see it.
    """
    return int(current_app.config.get("LIVE_POLL_SECONDS", 30))


# Importing the view modules registers their routes on bp.
from app.web import (  # noqa: E402,F401
    alerts,
    catalog,
    catalog_variables,
    dashboard,
    dead_letters,
    execution_detail,
    executions,
    export,
    preferences,
    queues,
    run_detail,
    runs,
    scheduled,
    scheduled_backfill,
    scheduled_edit,
    task_durations,
    watch_labels,
    workers,
)
