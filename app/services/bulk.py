"""Bulk actions: apply one action to each of several ids and say what happened to each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import DomainError
from app.extensions import db


def answer_each(
    ids: list[Any], action: Callable[[Any], str | None], status: int, code: str
) -> dict:
    """Apply ``action`` to each id once; one answer per id, failures included.

    An answer is ``{"id", "status", "code", "new_task_id"}`` on success (``status``/``code`` as
    given) or ``{"id", "status", "code", "message"}`` from the :class:`DomainError` raised.
    """
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
