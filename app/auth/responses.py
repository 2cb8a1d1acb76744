"""Refusals: JSON ``{"error": {...}}`` for API callers, an HTML page for browsers."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import (
    Flask,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.auth.access import is_api_request
from app.auth.redirects import safe_next
from app.bounds import json_depth_ok

log = logging.getLogger("app.web")


def error_response(status: int, code: str, message: str) -> Response:
    """An error answer in the caller's format."""
    if is_api_request():
        body = {"error": {"code": code, "message": message, "fields": {}}}
        response = jsonify(body)
    else:
        response = make_response(
            render_template("errors/error.html", status=status, message=message)
        )
    response.status_code = status
    return response


def unauthorized() -> Response:
    """Anonymous: browsers go to the login page (coming back afterwards), API callers get 401."""
    if is_api_request():
        response = error_response(401, "unauthorized", _("Authentication required."))
        response.headers["WWW-Authenticate"] = 'Bearer realm="ewas"'
        return response
    next_path = safe_next(request.full_path if request.query_string else request.path)
    return redirect(url_for("auth.login", next=next_path))


def forbidden() -> Response:
    return error_response(403, "forbidden", _("Your role does not allow this."))


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> Response:
        message = _("The form expired or was not sent by this site; reload the page and retry.")
        return error_response(400, "csrf_failed", message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"] or 0
        message = _(
            "The request is larger than %(size)s kB, the most this site accepts.",
            size=limit // 1024,
        )
        return error_response(413, "too_large", message)

    @app.before_request
    def refuse_deep_json() -> Response | None:
        """A JSON body nested deeper than any input needs is refused before any parser reads
        it (100,000 levels would exhaust the recursion of Python's JSON decoder)."""
        if request.is_json and not json_depth_ok(request.get_data(cache=True)):
            message = _("The JSON body is nested too deeply.")
            return error_response(400, "malformed_json", message)
        return None

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> Response:
        message = _("Too many attempts; wait a minute and try again.")
        response = error_response(429, "rate_limited", message)
        response.headers["Retry-After"] = "60"
        return response

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(kombu.exceptions.OperationalError)  # a send to the broker gave up
    def redis_unavailable(error: Exception) -> Response:
        """Redis down, restarting or read-only (a failover): what needs it answers 503 with a
        clear message, one log line per request and no traceback; the rest keeps working."""
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        log.warning(
            "web: Redis unavailable for %s (%s: %s)", request.path, type(error).__name__, first_line
        )
        message = _("Redis is not answering; this needs it. Try again in a moment.")
        response = error_response(503, "redis_unavailable", message)
        response.headers["Retry-After"] = "5"
        return response
