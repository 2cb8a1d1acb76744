"""Schedule management: create, update, delete, enable, disable, run now.

Services add and mutate; the caller commits. Each change is written through to Redis right
after the commit that made it (a session hook), so beat sees it on its next tick (<= 1 s)
and Redis never holds a schedule the database rolled back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import uuid4

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.bounds import key_fits, parse_id
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler.projection import enabled_count, entry_data, last_occurrences, sync_entry
from app.scheduler.sending import send
from app.scheduler.store import get_store
from app.scheduler.validation import TIMING_FIELDS, clean

log = logging.getLogger(__name__)
PENDING = "scheduler_pending"  # session.info: {id: retimed} to write through after commit
READY = "scheduler_ready"  # session.info: projections computed before commit
EXPECTED = "scheduler_expected"  # session.info: enabled schedules once this commit lands


def get_schedule(name_or_id: str | int) -> ScheduledTask:
    """A schedule by id or by name, or NotFound."""
    schedule = None
    schedule_id = name_or_id if isinstance(name_or_id, int) else parse_id(str(name_or_id))
    if schedule_id is not None and key_fits(ScheduledTask, schedule_id):
        schedule = db.session.get(ScheduledTask, schedule_id)
    if schedule is None:
        schedule = db.session.scalar(
            select(ScheduledTask).where(ScheduledTask.name == str(name_or_id))
        )
    if schedule is None:
        raise NotFound(_("No schedule %(name)s.", name=name_or_id))
    return schedule


def current_values(schedule: ScheduledTask) -> dict[str, Any]:
    """The schedule's definition as the fields the validation takes (descriptions by language)."""
    from app.scheduler.validation import FIELDS

    values = {f: getattr(schedule, f) for f in FIELDS if f != "descriptions"}
    values["descriptions"] = schedule.descriptions()
    return values


def _apply(schedule: ScheduledTask, values: dict[str, Any]) -> None:
    for field, value in values.items():
        if field == "descriptions":
            for language, text in value.items():
                setattr(schedule, f"description_{language}", text or None)
        else:
            setattr(schedule, field, value)


def _check_unique(name: str, schedule_id: int | None) -> None:
    other = db.session.scalar(select(ScheduledTask.id).where(ScheduledTask.name == name))
    if other is not None and other != schedule_id:
        message = _("A schedule named %(name)s already exists.", name=name)
        raise Conflict(message, {"name": [message]})


def _pending(schedule: ScheduledTask, retimed: bool) -> None:
    pending = db.session.info.setdefault(PENDING, {})
    pending[schedule.id] = pending.get(schedule.id, False) or retimed


def create_schedule(**values: Any) -> ScheduledTask:
    """Validate and add a schedule; it starts timing from now."""
    cleaned = clean(values)
    _check_unique(cleaned["name"], None)
    schedule = ScheduledTask(scheduled_from=utcnow())
    _apply(schedule, cleaned)
    db.session.add(schedule)
    db.session.flush()
    _pending(schedule, retimed=True)
    return schedule


def update_schedule(schedule: ScheduledTask, **changes: Any) -> ScheduledTask:
    """Validate the schedule with ``changes`` applied; timing changes restart timing from now."""
    merged = {**current_values(schedule), **changes}
    cleaned = clean(merged)
    _check_unique(cleaned["name"], schedule.id)
    retimed = any(getattr(schedule, f) != cleaned[f] for f in TIMING_FIELDS) or (
        cleaned["enabled"] and not schedule.enabled
    )
    retimed = retimed or cleaned["name"] != schedule.name  # H fields hash the name
    if cleaned["enabled"] and not schedule.enabled:
        # Resuming: a schedule paused after failures counts its failures again from now.
        schedule.paused_after_failures = schedule.paused_at = None
    _apply(schedule, cleaned)
    if retimed:
        schedule.scheduled_from = utcnow()
    db.session.flush()
    _pending(schedule, retimed)
    return schedule


def set_enabled(schedule: ScheduledTask, enabled: bool) -> ScheduledTask:
    """Enable (next occurrence after now, no catch-up) or disable (leaves the due set)."""
    return update_schedule(schedule, enabled=enabled)


def changed_elsewhere(schedule_id: int) -> None:
    """Write ``schedule_id`` through to Redis after this commit: a change made outside this
    module (the recorder pausing a schedule after failures), with its due time kept."""
    pending = db.session.info.setdefault(PENDING, {})
    pending.setdefault(schedule_id, False)


def delete_schedule(schedule: ScheduledTask) -> None:
    """Delete a schedule and its run history (executions keep their schedule id)."""
    db.session.info.setdefault(PENDING, {})[schedule.id] = None
    db.session.delete(schedule)
    db.session.flush()


def run_now(schedule: ScheduledTask) -> ScheduleRun:
    """Send the schedule's task at once, tracked like any run; the next due time is untouched."""
    now = utcnow()
    run = ScheduleRun(schedule_id=schedule.id, occurrence=now, kind=RunKind.MANUAL)
    run.task_id = str(uuid4())
    try:
        send(current_app.extensions["celery"], entry_data(schedule), now, "manual", run.task_id)
        run.sent_at = utcnow()
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    schedule.last_run_at = now
    schedule.total_run_count = (schedule.total_run_count or 0) + 1
    db.session.add(run)
    db.session.flush()
    return run


def sync_all() -> int:
    """Rebuild the Redis projection from the database (what beat does on start)."""
    from app.scheduler.projection import rebuild

    return rebuild(get_store())


@event.listens_for(Session, "before_commit")
def _prepare_write_through(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    last = last_occurrences([sid for sid, r in pending.items() if r is not None])
    ready: list[tuple[int, dict[str, Any] | None, datetime | None, datetime | None, bool]] = []
    for schedule_id, retimed in pending.items():
        schedule = session.get(ScheduledTask, schedule_id) if retimed is not None else None
        if schedule is None or not schedule.enabled:
            ready.append((schedule_id, None, None, None, False))
        else:
            data = entry_data(schedule)
            ready.append(
                (schedule_id, data, schedule.scheduled_from, last.get(schedule_id), retimed)
            )
    session.info[READY] = ready
    session.info[EXPECTED] = enabled_count()


@event.listens_for(Session, "after_commit")
def _write_through(session: Session) -> None:
    ready = session.info.pop(READY, None)
    expected = session.info.pop(EXPECTED, None)
    if not ready:
        return
    store = get_store()
    for schedule_id, data, scheduled_from, last, retimed in ready:
        try:
            sync_entry(store, schedule_id, data, scheduled_from, last, bool(retimed))
        except Exception:  # the database is the truth; the next beat start rebuilds Redis
            log.exception("could not write schedule %s through to Redis", schedule_id)
    try:
        # The health check compares the entries with this count: an edit that removes an entry
        # must not look like a lost projection until beat counts again.
        store.set_expected(expected)
        store.wake()
    except Exception:  # beat still sees the change on its next tick (<= SCHEDULER_MAX_SLEEP)
        log.exception("could not wake beat")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(READY, None)
    session.info.pop(EXPECTED, None)
