"""Celery bound to the Flask app: every task body runs inside an application context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from app import kombu_fixes


class AppContextTask(Task):
    """Base of every task: runs the body inside the Flask app's context (the Flask docs' pattern,
    as a named class so the per-type policy classes can build on it)."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for ``app``."""
    celery_app = Celery(app.name, task_cls=AppContextTask)
    celery_app.flask_app = app
    celery_app.config_from_object("celeryconfig")
    celery_app.conf.broker_url = app.config["REDIS_URL"]
    kombu_fixes.install()
    celery_app.conf.update(app.config.get("CELERY", {}))
    if app.config.get("CELERY_RESULT_BACKEND"):
        # Celery's own result store, only for comparison benchmarks: the engine records results
        # itself, through tracking.
        celery_app.conf.update(
            result_backend=app.config["CELERY_RESULT_BACKEND"],
            task_ignore_result=False,
            result_extended=True,
        )
    else:
        # Tracking records results, Celery none (quietly: app.tracking.results).
        celery_app.conf.result_backend = "app.tracking.results:NoResults"
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
