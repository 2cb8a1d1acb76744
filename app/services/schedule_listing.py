"""The scheduled-tasks list: a bounded page by name, each row with its next and last run.

Next runs come from beat's own due set in Redis (one round trip per page); when Redis cannot
say (down, or the entry not projected yet) they are computed from the schedule's timing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

import redis
from sqlalchemy import Select, select

from app.models import RunKind, ScheduledTask
from app.models.types import utcnow
from app.paging import Page, keyset_page, url_cursor
from app.runs.outcome import latest_outcomes
from app.scheduler.preview import occurrences
from app.scheduler.store import get_store
from app.scheduler.timing import from_ms
from app.watch.facts import watch
from app.watch.states import Assessment

log = logging.getLogger(__name__)
PAGE_SIZE = 25  # as Sidekiq's pages: each row formats two localized times


@dataclass(frozen=True)
class LastRun:
    """A schedule's latest occurrence and what became of it (its pipeline run's outcome)."""

    kind: RunKind
    occurrence: datetime
    task_id: str | None
    error: str | None
    status: str | None
    pipeline_run_id: int | None = None
    failed_step: str | None = None
    error_message: str | None = None

    @property
    def outcome(self) -> str:
        """missed, skipped (overlap policy), error (could not send), the run's status, or sent
        (not tracked yet)."""
        if self.kind == RunKind.MISSED:
            return "missed"
        if self.kind == RunKind.SKIPPED:
            return "skipped"
        if self.error:
            return "error"
        return self.status if self.status is not None else "sent"


@dataclass(frozen=True)
class ScheduleRow:
    schedule: ScheduledTask
    next_run: datetime | None
    last_run: LastRun | None
    watch: Assessment | None = None  # what the schedule watch says now


def schedules_query(search: str | None = None, enabled: bool | None = None) -> Select:
    """Schedules whose name contains ``search`` (any case), optionally by enabled state."""
    query = select(ScheduledTask)
    if search:
        query = query.where(ScheduledTask.name.icontains(search, autoescape=True))
    if enabled is not None:
        query = query.where(ScheduledTask.enabled.is_(enabled))
    return query


def schedules_page(
    query: Select, after: str | None = None, before: str | None = None, size: int = PAGE_SIZE
) -> Page:
    """One page of ``query`` by name, after or before a name (keyset, never OFFSET), as
    :class:`ScheduleRow` rows."""
    cursor = url_cursor(after, before)
    page = keyset_page(query, [ScheduledTask.name], size, cursor, descending=False)
    return replace(page, rows=rows_for(page.rows))


def rows_for(schedules: list[ScheduledTask]) -> list[ScheduleRow]:
    """Each schedule with its next run and its last run."""
    nexts = next_runs(schedules)
    lasts = last_runs([s.id for s in schedules])
    watched = {w.schedule.id: w.assessment for w in watch(schedules, utcnow())}
    return [ScheduleRow(s, nexts.get(s.id), lasts.get(s.id), watched.get(s.id)) for s in schedules]


def last_runs(ids: list[int]) -> dict[int, LastRun]:
    """The latest run of each schedule, missed ones included."""
    return {
        schedule_id: LastRun(
            run.kind, run.occurrence, run.task_id, run.error, status, run_id, failed_step, error
        )
        for schedule_id, (
            run,
            status,
            _started,
            _finished,
            error,
            run_id,
            failed_step,
        ) in latest_outcomes(ids).items()
    }


def next_runs(schedules: list[ScheduledTask]) -> dict[int, datetime | None]:
    """When each enabled schedule fires next (beat's due time; computed when Redis can't say)."""
    enabled = [s for s in schedules if s.enabled]
    try:
        dues = get_store().due_many([s.id for s in enabled])
    except redis.RedisError:
        log.warning("Redis unavailable: next runs computed from the schedules' timing")
        dues = {}
    now = utcnow()
    found: dict[int, datetime | None] = {}
    for schedule in enabled:
        due = dues.get(schedule.id)
        if due is not None:
            found[schedule.id] = from_ms(due)
        else:
            upcoming = occurrences(schedule, max(now, schedule.scheduled_from), 1)
            found[schedule.id] = upcoming[0] if upcoming else None
    return found
