"""Shared API pieces: the error schema, common arguments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from flask_smorest import abort as smorest_abort

from app.auth.access import requires
from app.bounds import ASCII_DIGITS, MAX_INT, OUT_OF_RANGE, OutOfRange, utc_moment
from app.bounds import MAX_BIGINT as MAX_ID
from app.models import Role

# The bulk helper lives in the services the pages share; re-exported here.
from app.services.bulk import answer_each  # noqa: F401

# flask_smorest ships no type hints; its abort always raises an HTTPException.
abort: Callable[..., NoReturn] = smorest_abort

MAX_PAGE_SIZE = 500
# MethodView resources: reads need a viewer, writes (POST/PUT/PATCH/DELETE) an operator.
VIEWER_RULE = [requires(Role.VIEWER)]


class UTCDateTime(ma.fields.AwareDateTime):
    """A moment as ISO-8601 in UTC (``2026-12-02T13:00:00+00:00``), typed ``date-time`` in the
    OpenAPI document, whatever it is stored as: an aware or naive (UTC) datetime, an epoch
    float (heartbeats, health) or an ISO string (the attempt timeline's JSON).

    As input (filters, schedule times): ISO 8601, naive meaning UTC, within the supported range
    (:func:`app.bounds.utc_moment`), so no later conversion overflows.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc_moment(moment)
        except OutOfRange:
            raise ma.ValidationError(str(OUT_OF_RANGE)) from None
        return moment

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()


class QueryInt(ma.fields.Integer):
    """A whole number in a query string: ASCII digits only (``int()`` also takes ``١٢``,
    `` 1`` and ``1_000``), from 1 to ``maximum`` (an INTEGER column by default)."""

    def __init__(self, maximum: int = MAX_INT, **kwargs: Any) -> None:
        super().__init__(strict=False, validate=ma.validate.Range(1, maximum), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and not ASCII_DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    # Schema.fields (the declared fields) is replaced per instance; the class attribute named
    # "fields" is only marshmallow's declaration of this field.
    fields = ma.fields.Dict(  # type: ignore[assignment]
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
        ma.fields.Integer(strict=True, validate=ma.validate.Range(1, MAX_ID)),
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


def existing_id(value: int, maximum: int = MAX_ID) -> int:
    """``value`` when it could be a stored id, else a 404 (never an overflow in the driver)."""
    if not 0 < value <= maximum:
        abort(404, message=str(_l("Not found.")))
    return value
