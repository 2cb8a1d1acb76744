"""From ``scheduled_tasks`` rows to Redis entries: the payload beat needs, and rebuilds."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.scheduler.store import Store
from app.scheduler.timing import UNIT_SECONDS, Timing, from_ms, next_run, to_ms


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def entry_data(schedule: ScheduledTask) -> dict[str, Any]:
    """Everything beat needs to time and send a schedule, as JSON."""
    interval = anchor = None
    if schedule.interval_every and schedule.interval_unit:
        interval = schedule.interval_every * UNIT_SECONDS[str(schedule.interval_unit)]
        # From start_at when given; otherwise one interval after creation.
        anchor = schedule.start_at or schedule.created_at + timedelta(seconds=interval)
    return {
        "id": schedule.id,
        "name": schedule.name,
        "task": schedule.task,
        "args": schedule.args or [],
        "kwargs": schedule.kwargs or {},
        "queue": schedule.queue,
        "priority": schedule.priority,
        "retry_policy": schedule.retry_policy,
        "chain": schedule.chain or [],
        "misfire": str(schedule.misfire_policy),
        "overlap": str(schedule.overlap_policy or "allow"),
        "timing": {
            "kind": str(schedule.kind),
            "crontab": schedule.crontab,
            "timezone": schedule.timezone,
            "hash_id": schedule.name,
            "interval_seconds": interval,
            "anchor": _ms(anchor),
            "run_at": _ms(schedule.run_at),
            "start_at": _ms(schedule.start_at),
            "expires_at": _ms(schedule.expires_at),
        },
    }


def timing_of(data: dict[str, Any]) -> Timing:
    t = data["timing"]
    times = {
        k: (None if t[k] is None else from_ms(t[k]))
        for k in ("anchor", "run_at", "start_at", "expires_at")
    }
    return Timing(
        kind=t["kind"],
        crontab=t["crontab"],
        timezone=t["timezone"],
        hash_id=t["hash_id"],
        interval_seconds=t["interval_seconds"],
        **times,
    )


def fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


def sync_entry(
    store: Store,
    schedule_id: int,
    data: dict[str, Any] | None,
    scheduled_from: datetime,
    last_occurrence: datetime | None,
    retimed: bool = True,
) -> None:
    """Write one schedule to Redis; ``data`` None (deleted or disabled) removes it.

    The next due time is the first occurrence after the schedule was (re)timed or enabled, its
    last occurrence in the database, or the last occurrence claimed in Redis, whichever is
    latest; when that is in the past, beat applies the misfire policy. A schedule edited
    without a timing change keeps its due time.
    """
    if data is None:
        store.remove(schedule_id)
        return
    timing = timing_of(data)
    fp = fingerprint(data)
    existing_due = store.due_ms(schedule_id)
    keep_due = existing_due is not None and not retimed
    after = max(filter(None, [scheduled_from, last_occurrence]))
    claimed_db = _ms(last_occurrence)
    for _attempt in range(5):
        if keep_due:
            due_ms = existing_due
        else:
            claimed = store.claimed(schedule_id)
            if claimed is not None:
                after = max(after, from_ms(claimed))
            due_ms = _ms(next_run(timing, after))
        blocking = store.upsert(schedule_id, data, fp, due_ms, claimed_db)
        if blocking is None:
            return
        keep_due = False
        after = max(after, from_ms(blocking))
    raise RuntimeError(f"schedule {schedule_id}: could not write a due time past the claimed one")


def last_occurrences(ids: list[int] | None = None) -> dict[int, datetime]:
    """The latest non-manual occurrence per schedule, from the run history."""
    query = select(ScheduleRun.schedule_id, func.max(ScheduleRun.occurrence)).where(
        ScheduleRun.kind != RunKind.MANUAL
    )
    if ids is not None:
        query = query.where(ScheduleRun.schedule_id.in_(ids))
    rows = db.session.execute(query.group_by(ScheduleRun.schedule_id))
    return {sid: occurrence for sid, occurrence in rows}


def enabled_count() -> int:
    """How many enabled schedules the database holds: the entries a complete projection has."""
    query = select(func.count()).select_from(ScheduledTask).where(ScheduledTask.enabled)
    return int(db.session.scalar(query) or 0)


def rebuild(store: Store) -> int:
    """Make Redis match the database and mark the projection complete; returns how many entries
    were written or removed.

    Entries whose fingerprint and due time are in place are left alone, so a running beat's
    state survives a standby's start; a flushed Redis is rebuilt completely, each entry resuming
    after the latest occurrence ``schedule_runs`` holds (so none is sent twice). A Redis flushed
    while this runs is noticed (the start note is gone) and rebuilt again.
    """
    changed = 0
    for _attempt in range(3):
        nonce = store.start_rebuild()
        written, ids = _rebuild_once(store)
        changed += written
        if store.mark_rebuilt(nonce, ids, len(ids)):
            return changed
    raise RuntimeError("the schedule store was emptied three times during its rebuild")


def _rebuild_once(store: Store) -> tuple[int, list[int]]:
    schedules = db.session.scalars(select(ScheduledTask).where(ScheduledTask.enabled)).all()
    ids = [s.id for s in schedules]
    fps = store.fingerprints(ids) if ids else {}
    due_pipe = store.client.pipeline(transaction=False)
    for sid in ids:
        due_pipe.zscore(store.key("due"), sid)
    dues = dict(zip(ids, due_pipe.execute(), strict=True)) if ids else {}
    last = last_occurrences()
    changed = 0
    for schedule in schedules:
        data = entry_data(schedule)
        same = fps.get(schedule.id) == fingerprint(data)
        if same and dues.get(schedule.id) is not None:
            continue
        claimed = store.claimed(schedule.id) if same else None
        if claimed is not None and next_run(timing_of(data), from_ms(claimed)) is None:
            continue  # in place, with nothing left to fire (a spent one-time entry)
        sync_entry(store, schedule.id, data, schedule.scheduled_from, last.get(schedule.id))
        changed += 1
    for stale in store.entry_ids() - set(ids):
        store.remove(stale)
        changed += 1
    return changed, ids
