"""The JSON API under /tasks/api/: flask-smorest resources, one error shape, OpenAPI.

Every error is ``{"error": {"code", "message", "fields"}}``: 400 for malformed JSON or cursors,
422 for input that parses but is invalid, 401/403 from access control, 404, 405, 409.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_babel import gettext as _
from flask_smorest import Api
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from app.api.common import ErrorSchema
from app.auth.access import API_PREFIX, access_rule, declare
from app.errors import DomainError
from app.extensions import db
from app.models import Role

log = logging.getLogger(__name__)
CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


class EngineApi(Api):
    """flask-smorest's Api with our error schema; its app-wide error handler is left out so HTML
    pages keep HTML errors (ours below answer JSON only under /tasks/api/)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


def error_body(
    status: int, code: str, message: str, fields: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested messages as ``{"dotted.field": [message, ...]}`` (string keys only)."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    return {prefix or "_schema": [str(messages)]}


def _http_error(error: HTTPException) -> Response | HTTPException:
    if not request.path.startswith(API_PREFIX):
        return error
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or {}
    fields: dict[str, list[str]] = {}
    for location_messages in messages.values() if isinstance(messages, dict) else []:
        fields.update(flatten(location_messages))
    code = data.get("error_code") or CODES.get(status, "error")
    if status == 400 and "json" in messages:
        code = "malformed_json"
    message = data.get("message") or error.description or error.name
    if status == 422:
        message = _("The input is not valid; see fields.")
    return error_body(status, code, str(message), fields)


def _domain_error(error: DomainError) -> Response:
    if not request.path.startswith(API_PREFIX):
        raise error
    return error_body(error.http_status, error.code, error.message, flatten(error.fields))


def _data_error(error: DataError) -> Response:
    """A value the database cannot hold (a NUL character, a number out of range): the input's
    fault, so 422, never a 500. Only reached by values no schema rule caught."""
    if not request.path.startswith(API_PREFIX):
        raise error
    db.session.rollback()
    return error_body(
        422, "invalid", _("A value cannot be stored or compared (e.g. a NUL character).")
    )


def init_app(app: Flask) -> None:
    """Register the API's resources, its error handlers and the access rules of OpenAPI."""
    from app.api import backfill, executions, health, metrics, operations, runs, scheduled, stats

    app.config.setdefault("API_TITLE", "EWAS task engine API")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = EngineApi(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    for module in (executions, runs, stats, scheduled, backfill, operations, health):
        for blueprint in module.blueprints():
            api.register_blueprint(blueprint)
    # The OpenAPI document describes the API: readable by anyone who may read the API.
    declare(app, "api-docs.openapi_json", access_rule(Role.VIEWER))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(DataError, _data_error)
    app.add_url_rule("/metrics", "metrics", metrics.metrics)
