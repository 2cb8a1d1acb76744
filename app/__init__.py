"""The EWAS task engine: ``create_app`` builds the Flask app and its bound Celery app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.config import INSTANCE_DIR, settings_from_env


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from environment settings, then ``config`` (tests pass overrides here)."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_mapping(settings_from_env())
    if config:
        app.config.from_mapping(config)
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)

    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    # models register their tables; tasks register the task catalogue on the Celery app.
    from app import auth, database, i18n, models, scheduler, tasks, tracking  # noqa: F401
    from app.celery_app import celery_init_app
    from app.extensions import db, init_redis, migrate
    from app.models.types import render_migration_type

    database.init_app(app)
    init_redis(app)
    migrate.init_app(
        app,
        db,
        directory=str(INSTANCE_DIR.parent / "migrations"),
        render_as_batch=True,
        render_item=render_migration_type,
        compare_type=True,
    )
    i18n.init_app(app)
    auth.init_app(app)
    celery_init_app(app)
    tracking.init_app(app)
    scheduler.init_app(app)


def register_blueprints(app: Flask) -> None:
    from flask import redirect, url_for

    from app.admin import bp as admin_bp
    from app.auth.access import requires
    from app.bounds import IdConverter
    from app.models import Role
    from app.web import bp as web_bp

    # Every <int:...> of every route is an id: ASCII digits that fit a BIGINT, else a 404.
    app.url_map.converters["int"] = IdConverter
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    from app import api

    api.init_app(app)
    app.add_url_rule("/", "root", requires(Role.VIEWER)(lambda: redirect(url_for("web.dashboard"))))


def register_commands(app: Flask) -> None:
    from app import cli

    cli.init_app(app)
