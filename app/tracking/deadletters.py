"""The dead-letter store: messages whose retries are exhausted, kept until requeued or discarded."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, select

from app.database import rowcount
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import DeadLetter
from app.models.types import utcnow
from app.tracking import events as ev


def full_message(task_events: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """The exact message of the failed attempt (from its final event), else what the row has."""
    for event in reversed(task_events):
        message = (event.get("fields") or {}).get("dead_letter_message")
        if event["kind"] == ev.FAILED and message:
            return {"task_id": row["task_id"], **message}
    return {
        "task_id": row["task_id"],
        "task_name": row.get("task_name") or "",
        "queue": row.get("queue"),
        "args": row.get("args"),
        "kwargs": row.get("kwargs"),
        "headers": {},
    }


def prune(max_count: int | None = None, max_age_days: int | None = None) -> int:
    """Drop dead letters older than the age limit, then the oldest beyond the count limit."""
    config = current_app.config
    max_count = max_count if max_count is not None else config.get("DEAD_LETTER_MAX", 10_000)
    max_age_days = max_age_days or config.get("DEAD_LETTER_MAX_AGE_DAYS", 180)
    removed = rowcount(
        db.session.execute(
            delete(DeadLetter).where(
                DeadLetter.created_at < utcnow() - timedelta(days=max_age_days)
            )
        )
    )
    total = db.session.scalar(select(func.count()).select_from(DeadLetter)) or 0
    if total > max_count:
        cutoff = db.session.scalar(
            select(DeadLetter.id).order_by(DeadLetter.id.desc()).offset(max_count).limit(1)
        )
        removed += rowcount(db.session.execute(delete(DeadLetter).where(DeadLetter.id <= cutoff)))
    return removed


def get_open(dead_letter_id: int) -> DeadLetter:
    letter = db.session.get(DeadLetter, dead_letter_id)
    if letter is None:
        raise NotFound(_("Dead letter %(id)s does not exist.", id=dead_letter_id))
    if letter.requeued_at is not None or letter.discarded_at is not None:
        raise Conflict(
            _("Dead letter %(id)s was already requeued or discarded.", id=dead_letter_id)
        )
    return letter


def requeue(dead_letter_id: int) -> str:
    """Send the dead message again as a new execution linked to the original; return its id."""
    from app.tracking.retry import send_linked

    letter = get_open(dead_letter_id)
    new_id = send_linked(
        letter.task_name,
        letter.args or [],
        letter.kwargs or {},
        letter.task_id,
        queue=letter.queue,
        headers=_json_headers(letter.headers),
    )
    letter.requeued_at = utcnow()
    letter.requeued_task_id = new_id
    return new_id


def discard(dead_letter_id: int) -> None:
    get_open(dead_letter_id).discarded_at = utcnow()


def _json_headers(headers: Any) -> dict[str, Any]:
    if isinstance(headers, str):
        headers = json.loads(headers)
    return {k: v for k, v in (headers or {}).items() if k != "ewas_tracked"}
