"""The tracking stream's upkeep: trimming what every consumer group acknowledged, and the backlog
that health and ``/metrics`` report.

An entry may be removed only once no consumer group still needs it: deleting right after one
group's XACK would take entries from under a second group (another recorder deployment, an
export). Redis 7.0 has no XACKDEL, so the stream is trimmed with ``XTRIM MINID`` below the oldest
entry any group has not acknowledged (its oldest pending entry, or the first it was not given).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import current_app

from app.tracking.emitter import STREAM


def _parse(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _groups(client: redis.Redis) -> list[dict[str, Any]]:
    """Each group with the oldest entry it still needs: (ms, seq), or None when it needs none."""
    try:
        groups = client.xinfo_groups(STREAM)
    except redis.ResponseError as error:  # no stream yet
        if "no such key" in str(error).lower():
            return []
        raise
    pipe = client.pipeline(transaction=False)
    for group in groups:
        pipe.xpending(STREAM, group["name"])
        # the first entry this group was not given yet
        pipe.xrange(STREAM, min=f"({_id_text(group['last-delivered-id'])}", count=1)
    answers = pipe.execute()
    found = []
    for index, group in enumerate(groups):
        pending, undelivered = answers[2 * index], answers[2 * index + 1]
        candidates = []
        if pending["pending"]:
            candidates.append(_parse(pending["min"]))
        if undelivered:
            candidates.append(_parse(undelivered[0][0]))
        lag = group.get("lag")
        found.append(
            {
                "name": _id_text(group["name"]),
                "pending": int(pending["pending"]),
                "undelivered": lag,
                "oldest": min(candidates) if candidates else None,
                "last_delivered": _parse(group["last-delivered-id"]),
            }
        )
    return found


def _id_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def trim_acknowledged(client: redis.Redis) -> int:
    """Remove the entries every consumer group acknowledged; returns how many went.

    The recorder calls it after each acknowledgement (three small round trips per batch of up to
    a thousand entries). Without a group nothing is trimmed: the entries wait for a recorder."""
    groups = _groups(client)
    if not groups:
        return 0
    needed = [g["oldest"] or _after_tuple(g["last_delivered"]) for g in groups]
    ms, seq = min(needed)
    return int(client.xtrim(STREAM, minid=f"{ms}-{seq}", approximate=False))


def _after_tuple(entry: tuple[int, int]) -> tuple[int, int]:
    return entry[0], entry[1] + 1


def backlog(client: redis.Redis) -> dict[str, Any]:
    """The stream's length, the entries some group has not acknowledged yet (the worst group's
    pending plus undelivered) and the age in seconds of the oldest of them (None: none)."""
    length = int(client.xlen(STREAM))
    groups = _groups(client) if length else []
    if length and not groups:  # nobody ever read it: everything waits
        first = client.xrange(STREAM, count=1)
        oldest = _parse(first[0][0]) if first else None
        unacknowledged = length
    else:
        oldest = min((g["oldest"] for g in groups if g["oldest"]), default=None)
        # lag is unknown to Redis after some deletions: the stream's length bounds it
        unacknowledged = max(
            (
                g["pending"] + (g["undelivered"] if g["undelivered"] is not None else length)
                for g in groups
            ),
            default=0,
        )
        unacknowledged = min(unacknowledged, length)
    age = max(0.0, time.time() - oldest[0] / 1000) if oldest else None
    return {
        "stream_length": length,
        "unacknowledged": unacknowledged if oldest else 0,
        "oldest_unacknowledged_seconds": round(age, 3) if age is not None else None,
    }


def recorder_check(client: redis.Redis) -> dict[str, Any]:
    """The recorder's health: not ok when it stopped committing while events wait
    (``RECORDER_MAX_LAG``), or when the backlog passes ``TRACKING_BACKLOG_ALERT_ENTRIES`` entries
    or ``TRACKING_BACKLOG_ALERT_SECONDS`` of age (a recorder down for hours, a stuck entry)."""
    from app.tracking import quarantine
    from app.tracking.recorder import LAG_KEY

    config = current_app.config
    found = backlog(client)
    last = client.get(LAG_KEY)
    lag = round(time.time() - float(last), 3) if last else None
    waiting = found["unacknowledged"]
    age = found["oldest_unacknowledged_seconds"]
    # An idle recorder commits nothing: lag only matters while events are waiting.
    stale = waiting > 0 and (lag is None or lag > config["RECORDER_MAX_LAG"])
    over = waiting > config["TRACKING_BACKLOG_ALERT_ENTRIES"] or (
        age is not None and age > config["TRACKING_BACKLOG_ALERT_SECONDS"]
    )
    return {
        "ok": not stale and not over,
        "backlog": waiting,
        "lag_seconds": lag,
        "over_threshold": over,
        # Refused events wait for an admin there; they do not hold up recording.
        "quarantined": quarantine.count(client),
        **found,
    }
