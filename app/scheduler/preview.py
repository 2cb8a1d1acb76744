"""The next occurrences of a schedule, saved or still being typed (the form's live preview).

Unsaved timing is judged by the same rules as a save (``clean_timing``) and timed by the same
code as beat (``entry_data`` + ``next_run``), so the preview never promises other times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.models import ScheduledTask
from app.models.types import utcnow
from app.scheduler.projection import entry_data, timing_of
from app.scheduler.timing import next_run
from app.scheduler.validation import Errors, clean_timing

PREVIEW_COUNT = 5


def occurrences(
    schedule: ScheduledTask, after: datetime, count: int = PREVIEW_COUNT
) -> list[datetime]:
    """The first ``count`` occurrences of ``schedule`` strictly after ``after`` (UTC)."""
    timing = timing_of(entry_data(schedule))
    found: list[datetime] = []
    current = after
    while len(found) < count:
        following = next_run(timing, current)
        if following is None:
            break
        found.append(following)
        current = following
    return found


def upcoming(values: dict[str, Any], count: int = PREVIEW_COUNT) -> list[datetime]:
    """The next ``count`` occurrences of unsaved timing ``values``; InvalidInput when invalid.

    ``values`` holds the timing fields of a schedule (kind, crontab, interval_every,
    interval_unit, run_at, timezone, start_at, expires_at) and its name (``H`` hashes it).
    """
    errors = Errors()
    name = (values.get("name") or "").strip()
    cleaned = clean_timing(values, errors, name)
    errors.raise_if_any()
    now = utcnow()
    # A draft, never added to the session: an interval counts from its creation, i.e. now.
    draft = ScheduledTask(name=name, created_at=now, **cleaned)
    return occurrences(draft, now, count)
