"""The quarantine: tracking events the database refused for a reason other than an outage.

The recorder moves such an event here, with its error, and goes on with the rest of its batch,
so one poison event never blocks tracking. It is a Redis stream capped at about ``MAX_ENTRIES``
(oldest dropped first) rather than a SQL table: what it holds is exactly what the database
refused (a NUL byte, an over-long or out-of-range value, whatever made the fold fail), so it
must live outside the database, and Redis stores any bytes. Admins list, discard or re-send
entries from the admin pages (app.services.quarantine).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from app.tracking.emitter import STREAM

QUARANTINE = "ewas:tracking:quarantine"
MAX_ENTRIES = 10_000
ERROR_MAX_CHARS = 500
EVENT_MAX_CHARS = 256 * 1024  # a real event is far smaller (arguments and results are capped)


@dataclass(frozen=True)
class Quarantined:
    """One quarantined event, as an admin sees it."""

    id: str
    event: str
    error_type: str
    error: str
    at: datetime
    entry_id: str

    @property
    def task_id(self) -> str | None:
        try:
            value = json.loads(self.event).get("task_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


def describe(error: BaseException) -> tuple[str, str]:
    """The error's type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return type(error).__name__, (lines[0] if lines else "")[:ERROR_MAX_CHARS]


def put(
    client: redis.Redis | Any, event: dict[str, Any], error: BaseException, entry_id: Any
) -> None:
    """Quarantine ``event`` (read from tracking stream entry ``entry_id``); ``client`` may be a
    pipeline."""
    error_type, message = describe(error)
    try:
        text = json.dumps(event, default=str, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        text = '{"unencodable":"the event could not be written back as JSON"}'
    client.xadd(
        QUARANTINE,
        {
            "event": text[:EVENT_MAX_CHARS],
            "error_type": error_type,
            "error": message,
            "at": repr(time.time()),
            "entry": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        },
        maxlen=MAX_ENTRIES,
        approximate=True,
    )


def count(client: redis.Redis) -> int:
    return int(client.xlen(QUARANTINE))


def _parse(entry_id: bytes, fields: dict[bytes, bytes]) -> Quarantined:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode("utf-8", "replace")

    try:
        at = datetime.fromtimestamp(float(text("at")), UTC)
    except ValueError:
        at = datetime.fromtimestamp(int(entry_id.split(b"-")[0]) / 1000, UTC)
    return Quarantined(
        id=entry_id.decode(),
        event=text("event"),
        error_type=text("error_type"),
        error=text("error"),
        at=at,
        entry_id=text("entry"),
    )


def newest(
    client: redis.Redis, before: str | None = None, limit: int = 50
) -> tuple[list[Quarantined], str | None]:
    """A page of entries, newest first, and the cursor of the next (older) page, if any."""
    high = f"({before}" if before else "+"
    rows = client.xrevrange(QUARANTINE, max=high, min="-", count=limit + 1)
    entries = [_parse(entry_id, fields) for entry_id, fields in rows[:limit]]
    return entries, (entries[-1].id if len(rows) > limit else None)


def get(client: redis.Redis, entry_id: str) -> Quarantined | None:
    rows = client.xrange(QUARANTINE, min=entry_id, max=entry_id, count=1)
    return _parse(*rows[0]) if rows else None


def discard(client: redis.Redis, entry_id: str) -> bool:
    return bool(client.xdel(QUARANTINE, entry_id))


def discard_all(client: redis.Redis) -> int:
    number = count(client)
    client.delete(QUARANTINE)
    return number


def resend(client: redis.Redis, entry_id: str) -> str | None:
    """Put the event back on the tracking stream (e.g. after a fix) and out of the quarantine;
    returns its new stream id, or None if the entry is gone. Should it fail again, the recorder
    quarantines it again."""
    entry = get(client, entry_id)
    if entry is None:
        return None
    pipe = client.pipeline(transaction=True)
    pipe.xadd(STREAM, {"e": entry.event})
    pipe.xdel(QUARANTINE, entry_id)
    new_id, _ = pipe.execute()
    return new_id.decode() if isinstance(new_id, bytes) else str(new_id)
