"""Shared API pieces: the error schema, keyset cursors, common arguments."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from flask_smorest import abort

from app.auth.access import requires
from app.errors import DomainError
from app.extensions import db
from app.models import Role

MAX_PAGE_SIZE = 500
MAX_ID = 2**62  # larger ids cannot exist; SQLite cannot even bind them
MAX_INT_ID = 2**31 - 1  # ids of 32-bit INTEGER keys (schedules, sources, variables)
# MethodView resources: reads need a viewer, writes (POST/PUT/PATCH/DELETE) an operator.
VIEWER_RULE = [requires(Role.VIEWER)]


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    fields = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()), required=True
    )


class ErrorSchema(ma.Schema):
    """Every API error: ``{"error": {"code", "message", "fields"}}``."""

    error = ma.fields.Nested(ErrorDetailSchema, required=True)


class BulkIdsSchema(ma.Schema):
    """A list of execution task ids for a bulk action."""

    class Meta:
        unknown = ma.RAISE

    task_ids = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 64)),
        required=True,
        validate=ma.validate.Length(1, MAX_PAGE_SIZE),
    )


class BulkIntIdsSchema(ma.Schema):
    """A list of numeric ids for a bulk action."""

    class Meta:
        unknown = ma.RAISE

    ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 2**62)),
        required=True,
        validate=ma.validate.Length(1, MAX_PAGE_SIZE),
    )


class BulkOutcomeSchema(ma.Schema):
    """The answer for one id of a bulk action."""

    id = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True, metadata={"description": "HTTP-like status"})
    code = ma.fields.String(required=True)
    message = ma.fields.String()
    new_task_id = ma.fields.String(allow_none=True)


class BulkResultSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(BulkOutcomeSchema), required=True)


BAD_CURSOR = _l("The cursor is not valid; start again from the first page.")


def encode_cursor(created_at: datetime, row_id: int, direction: str) -> str:
    """An opaque cursor for the keyset (created_at, id) and a direction (next or prev)."""
    raw = json.dumps([created_at.isoformat(), row_id, direction], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int, str]:
    """The keyset and direction of ``cursor``; a malformed cursor is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id, direction = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or direction not in ("next", "prev"):
            raise ValueError(cursor)
        if not isinstance(row_id, int) or isinstance(row_id, bool) or abs(row_id) > MAX_ID:
            raise ValueError(cursor)
        return moment, row_id, direction
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        abort(400, message=str(BAD_CURSOR), error_code="bad_cursor")
        raise  # unreachable: abort raises


def existing_id(value: int, maximum: int = MAX_ID) -> int:
    """``value`` when it could be a stored id, else a 404 (never an overflow in the driver)."""
    if not 0 < value <= maximum:
        abort(404, message=str(_l("Not found.")))
    return value


def answer_each(
    ids: list[Any], action: Callable[[Any], str | None], status: int, code: str
) -> dict:
    """Apply ``action`` to each id once; one answer per id, failures included (bulk routes)."""
    results = []
    for item in dict.fromkeys(ids):
        try:
            new_id = action(item)
            results.append({"id": str(item), "status": status, "code": code, "new_task_id": new_id})
        except DomainError as error:
            db.session.rollback()
            results.append(
                {
                    "id": str(item),
                    "status": error.http_status,
                    "code": error.code,
                    "message": error.message,
                }
            )
    return {"results": results}
