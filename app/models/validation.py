"""Field rules shared by several models."""

from __future__ import annotations

import keyword
import re
import uuid

from flask_babel import gettext as _

from app.errors import InvalidInput

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def validate_identifier(value: str | None, field: str, max_length: int = 64) -> str:
    """Names and codes are lowercase Python identifiers (``data_retrieval``)."""
    if (
        not value
        or len(value) > max_length
        or not IDENTIFIER.fullmatch(value)
        or keyword.iskeyword(value)
    ):
        message = _(
            "%(field)s must be a lowercase Python identifier: lowercase letters, digits and "
            "underscores, starting with a letter or underscore (at most %(max)d characters).",
            field=field,
            max=max_length,
        )
        raise InvalidInput(message, {field: [message]})
    return value


def validate_task_id(value: str | None) -> str:
    """Celery task ids are UUIDs; keep them in their canonical lowercase form."""
    try:
        return str(uuid.UUID(str(value)))
    except (TypeError, ValueError, AttributeError):
        message = _("task_id must be a UUID, got %(value)r.", value=value)
        raise InvalidInput(message, {"task_id": [message]}) from None
