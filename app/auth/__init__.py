"""Access control: users and roles, sessions and API tokens, CSRF, security headers, audit."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("auth", __name__, url_prefix="/tasks")


def init_app(app: Flask) -> None:
    """Wire sign-in, the access guard, rate limiting, headers and the auth views."""
    from app.auth import guard, identity, responses, security, views  # noqa: F401
    from app.auth.access import may_operate, role_label
    from app.extensions import limiter
    from app.models import Role

    security.init_app(app)
    identity.init_app(app)
    guard.init_app(app)  # before the limiter: refused requests never count as login attempts
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    # While Redis is down, sign-in is still limited, per process, instead of failing with a 500.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 2, "socket_connect_timeout": 2}
    )
    limiter.init_app(app)
    responses.init_app(app)
    app.jinja_env.globals.update(Role=Role, role_label=role_label, may_operate=may_operate)
    app.register_blueprint(bp)
