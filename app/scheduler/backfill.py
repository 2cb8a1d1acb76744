"""Backfill: the occurrences a schedule would have sent in a past range, and claiming some of
them so each is sent once.

Occurrences are timed by the code beat uses (``entry_data`` + ``next_run``: crontab on the
schedule's wall clock with its DST policy, phase-locked intervals, one-time). An occurrence is
already run when ``schedule_runs`` holds a sent (or being sent) row for it: scheduled,
catch-up, manual or backfill, without a send error. Claiming takes the schedule's row lock
first, so two claims of the same occurrence (one request choosing it twice, two operators at
once) add one backfill run between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from celery import Celery
from flask_babel import gettext as _
from sqlalchemy import select, update

from app.bounds import OutOfRange, utc_moment
from app.database import rowcount
from app.errors import InvalidInput
from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler.projection import entry_data, timing_of
from app.scheduler.sending import send
from app.scheduler.timing import Timing, from_ms, next_run, to_ms, zone

MAX_SPAN = timedelta(days=31)
MAX_OCCURRENCES = 1000
SENT_KINDS = (RunKind.SCHEDULED, RunKind.CATCHUP, RunKind.MANUAL, RunKind.BACKFILL)
# ISO 8601 as typed or sent by a datetime-local input: ASCII only (no other digits, no NUL).
MOMENT_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]{2,15})?(Z|[+-][0-9:]{2,8})?")


@dataclass(frozen=True)
class Window:
    """A past range [start, end) (UTC) and the zone it was typed in."""

    start: datetime
    end: datetime
    timezone: str


@dataclass(frozen=True)
class Occurrence:
    """One occurrence in a window, with the run that already covers it, if any."""

    moment: datetime
    run_kind: str | None = None
    task_id: str | None = None

    @property
    def already_run(self) -> bool:
        return self.run_kind is not None


def _moment(text: Any, tz: Any, field: str, errors: dict[str, list[str]]) -> datetime | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        errors.setdefault(field, []).append(
            _("Give both ends of the range: a backfill never covers an open range.")
        )
        return None
    if not isinstance(text, str) or not MOMENT_TEXT.fullmatch(text.strip()):
        errors.setdefault(field, []).append(
            _("Not a date and time: use YYYY-MM-DD HH:MM, e.g. 2026-12-01 06:00.")
        )
        return None
    try:
        value = datetime.fromisoformat(text.strip())
        return utc_moment(value if value.tzinfo else value.replace(tzinfo=tz))
    except OutOfRange as exc:
        errors.setdefault(field, []).append(str(exc))
    except (ValueError, OverflowError):
        errors.setdefault(field, []).append(
            _("Not a date and time: use YYYY-MM-DD HH:MM, e.g. 2026-12-01 06:00.")
        )
    return None


def window(start: Any, end: Any, timezone: Any, now: datetime | None = None) -> Window:
    """The range [start, end) typed in ``timezone`` (a naive time is read there), or
    InvalidInput naming the fields: open, reversed, in the future or longer than MAX_SPAN."""
    tz = zone(timezone)
    errors: dict[str, list[str]] = {}
    low = _moment(start, tz, "start", errors)
    high = _moment(end, tz, "end", errors)
    now = now or utcnow()
    if low is not None and high is not None:
        if high <= low:
            errors["end"] = [_("The end must come after the start.")]
        elif high > now:
            errors["end"] = [_("A backfill covers the past only: the end is after now.")]
        elif high - low > MAX_SPAN:
            errors["end"] = [
                _(
                    "A backfill covers at most %(days)d days; choose a shorter range.",
                    days=MAX_SPAN.days,
                )
            ]
    if errors:
        raise InvalidInput(_("The backfill range is not valid."), errors)
    assert low is not None and high is not None
    return Window(low, high, str(timezone))


def occurrences_in(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    """The occurrences of ``timing`` in [start, end), to the millisecond beat records them at;
    InvalidInput when there are more than MAX_OCCURRENCES (nothing is listed then)."""
    found: list[datetime] = []
    current = start - timedelta(microseconds=1)
    while True:
        following = next_run(timing, current)
        if following is None or following >= end:
            return found
        if len(found) >= MAX_OCCURRENCES:
            message = _(
                "This range holds more than %(count)d occurrences; choose a shorter range.",
                count=MAX_OCCURRENCES,
            )
            raise InvalidInput(message, {"end": [message]})
        found.append(from_ms(to_ms(following)))
        current = following


def mark(moments: list[datetime], covered: dict[int, ScheduleRun]) -> list[Occurrence]:
    """Each moment with the run covering it (``covered`` is keyed by epoch milliseconds)."""
    marked = []
    for moment in moments:
        run = covered.get(to_ms(moment))
        if run is None:
            marked.append(Occurrence(moment))
        else:
            marked.append(Occurrence(moment, str(run.kind), run.task_id))
    return marked


def covering_runs(schedule_id: int, start: datetime, end: datetime) -> dict[int, ScheduleRun]:
    """The sent (or being sent) runs of a schedule with an occurrence in [start, end], by
    occurrence in epoch milliseconds (the earliest row when there are several)."""
    query = (
        select(ScheduleRun)
        .where(
            ScheduleRun.schedule_id == schedule_id,
            ScheduleRun.occurrence >= start,
            ScheduleRun.occurrence <= end,
            ScheduleRun.kind.in_(SENT_KINDS),
            ScheduleRun.error.is_(None),
        )
        .order_by(ScheduleRun.id)
    )
    found: dict[int, ScheduleRun] = {}
    for run in db.session.scalars(query):
        found.setdefault(to_ms(run.occurrence), run)
    return found


def listing(schedule: ScheduledTask, span: Window) -> list[Occurrence]:
    """The occurrences ``schedule`` would have sent in ``span``, already-run ones marked."""
    moments = occurrences_in(timing_of(entry_data(schedule)), span.start, span.end)
    return mark(moments, covering_runs(schedule.id, span.start, span.end))


def claim(schedule: ScheduledTask, moments: list[datetime]) -> tuple[list[ScheduleRun], int]:
    """Add a backfill run, with its task id and not sent yet, for each of ``moments`` that no
    run covers (a moment given twice counts once); returns them (oldest first) and how many
    moments were skipped as already run. The caller
    commits.

    The schedule's row is written first (a no-op update): PostgreSQL locks it and SQLite takes
    its write lock, so a concurrent claim waits for this one's commit and then sees its rows.
    """
    db.session.execute(
        update(ScheduledTask)
        .where(ScheduledTask.id == schedule.id)
        .values(updated_at=ScheduledTask.updated_at)
        .execution_options(synchronize_session=False)
    )
    wanted = sorted({to_ms(m): from_ms(to_ms(m)) for m in moments}.items())
    if not wanted:
        return [], 0
    covered = covering_runs(schedule.id, wanted[0][1], wanted[-1][1])
    runs = [
        ScheduleRun(
            schedule_id=schedule.id, occurrence=moment, kind=RunKind.BACKFILL, task_id=str(uuid4())
        )
        for ms, moment in wanted
        if ms not in covered
    ]
    db.session.add_all(runs)
    db.session.flush()
    return runs, len(wanted) - len(runs)


def take_pending(schedule_id: int, task_id: str) -> ScheduleRun | None:
    """Mark the claimed backfill run ``task_id`` sent, if it is still waiting, and return it;
    None when it was sent or refused already, or deleted with its schedule. The caller commits
    before sending, so a redelivered or concurrent sending task never sends it again."""
    taken = db.session.execute(
        update(ScheduleRun)
        .where(
            ScheduleRun.schedule_id == schedule_id,
            ScheduleRun.task_id == task_id,
            ScheduleRun.kind == RunKind.BACKFILL,
            ScheduleRun.sent_at.is_(None),
            ScheduleRun.error.is_(None),
        )
        .values(sent_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken) != 1:
        return None
    return db.session.scalar(
        select(ScheduleRun).where(
            ScheduleRun.schedule_id == schedule_id, ScheduleRun.task_id == task_id
        )
    )


def send_claimed(celery: Celery, run: ScheduleRun) -> None:
    """Send one taken backfill run like beat sends an occurrence (same headers, kind
    ``backfill``), as the root of its own run even when sent from a worker's task; a failure is
    recorded on the row (not sent: it may be backfilled again). The caller commits."""
    schedule = db.session.get(ScheduledTask, run.schedule_id)
    if schedule is None:
        return
    occurrence = run.occurrence.astimezone(UTC)
    try:
        send(celery, entry_data(schedule), occurrence, "backfill", run.task_id or "", root=True)
        schedule.total_run_count = (schedule.total_run_count or 0) + 1
    except Exception as exc:
        run.sent_at = None
        run.error = f"{type(exc).__name__}: {exc}"
