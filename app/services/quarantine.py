"""Quarantined tracking events as admins handle them: discard one or all, or re-send one to the
tracking stream, each with an audit entry. The caller commits (the audit entries)."""

from __future__ import annotations

import re

import redis
from flask_babel import gettext as _

from app.errors import NotFound, Unavailable
from app.services.audit import record_audit
from app.tracking import quarantine
from app.tracking.quarantine import Quarantined

ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")


def valid_id(entry_id: str | None) -> str | None:
    """``entry_id`` when it is a stream id (anything else would make Redis refuse the read)."""
    return entry_id if entry_id and ENTRY_ID.fullmatch(entry_id) else None


def page(
    client: redis.Redis, before: str | None, limit: int
) -> tuple[list[Quarantined], str | None, int]:
    """A page of entries newest first, the cursor of the next one, and how many there are."""
    try:
        entries, next_before = quarantine.newest(client, valid_id(before), limit)
        return entries, next_before, quarantine.count(client)
    except redis.RedisError as error:
        raise Unavailable(_("Redis is not answering; try again later.")) from error


def _existing(client: redis.Redis, entry_id: str) -> Quarantined:
    entry = quarantine.get(client, entry_id) if valid_id(entry_id) else None
    if entry is None:
        raise NotFound(_("This quarantined event no longer exists."))
    return entry


def discard(client: redis.Redis, entry_id: str) -> None:
    try:
        entry = _existing(client, entry_id)
        quarantine.discard(client, entry_id)
    except redis.RedisError as error:
        raise Unavailable(_("Redis is not answering; try again later.")) from error
    record_audit(
        "quarantine.discard",
        "tracking_event",
        entry_id,
        details={"task_id": entry.task_id, "error_type": entry.error_type},
    )


def discard_all(client: redis.Redis) -> int:
    try:
        number = quarantine.discard_all(client)
    except redis.RedisError as error:
        raise Unavailable(_("Redis is not answering; try again later.")) from error
    record_audit("quarantine.discard_all", "tracking_event", details={"count": number})
    return number


def resend(client: redis.Redis, entry_id: str) -> str:
    """Put the event back on the tracking stream; returns its new stream id."""
    try:
        entry = _existing(client, entry_id)
        new_id = quarantine.resend(client, entry_id)
    except redis.RedisError as error:
        raise Unavailable(_("Redis is not answering; try again later.")) from error
    if new_id is None:
        raise NotFound(_("This quarantined event no longer exists."))
    record_audit(
        "quarantine.resend",
        "tracking_event",
        entry_id,
        details={"task_id": entry.task_id, "stream_id": new_id},
    )
    return new_id
