"""Backfill a schedule (operators): list the occurrences of a past range, then send the chosen
ones in the background, throttled, each once, as ``backfill`` runs. Audited.

The audit entry of a backfill is its record: it holds the range, the occurrences chosen and the
task ids of those claimed, so its progress is read back from those runs
(:func:`progress`). The caller commits; :func:`dispatch` queues the sending after that commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from app.bounds import key_fits
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import AuditEntry, RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler.backfill import MAX_OCCURRENCES, Occurrence, Window, claim, listing, window
from app.scheduler.timing import from_ms, to_ms
from app.services.audit import record_audit

ACTION = "schedule.backfill"
SEND_TASK = "maintenance.tasks.send_backfill"


@dataclass
class Preview:
    """The occurrences of a range, the already-run ones marked."""

    window: Window
    occurrences: list[Occurrence]

    @property
    def to_send(self) -> int:
        return sum(1 for o in self.occurrences if not o.already_run)


@dataclass
class Backfill:
    """A started backfill: the runs it claimed (sent in the background) and what it skipped."""

    audit_id: int
    schedule_id: int
    runs: list[ScheduleRun]
    skipped: int
    task_ids: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """Where a backfill stands: each claimed run, sent, waiting or refused."""

    audit_id: int
    start: datetime
    end: datetime
    chosen: int
    skipped: int
    runs: list[ScheduleRun]

    @property
    def sent(self) -> int:
        return sum(1 for run in self.runs if run.sent_at is not None)

    @property
    def failed(self) -> int:
        return sum(1 for run in self.runs if run.error is not None)

    @property
    def waiting(self) -> int:
        return len(self.runs) - self.sent - self.failed


def preview(schedule: ScheduledTask, start: Any, end: Any, timezone: Any = None) -> Preview:
    """The occurrences ``schedule`` would have sent in [start, end) (typed in ``timezone``,
    by default the schedule's); InvalidInput for a bad range."""
    span = window(start, end, timezone or schedule.timezone)
    return Preview(span, listing(schedule, span))


def _chosen(values: Any, listed: dict[int, Occurrence]) -> list[datetime]:
    """The chosen occurrences (ISO 8601 or epoch milliseconds), each one of ``listed``."""
    if not isinstance(values, list | tuple) or not values:
        message = _("Choose at least one occurrence to send.")
        raise InvalidInput(message, {"occurrences": [message]})
    if len(values) > MAX_OCCURRENCES:
        message = _("Choose at most %(count)d occurrences.", count=MAX_OCCURRENCES)
        raise InvalidInput(message, {"occurrences": [message]})
    chosen = []
    for value in values:
        ms = _as_ms(value)
        if ms is None or ms not in listed:
            shown = str(value)[:40].replace("\x00", "")
            message = _(
                "%(value)s is not an occurrence of this schedule in the range.", value=shown
            )
            raise InvalidInput(message, {"occurrences": [message]})
        chosen.append(from_ms(ms))
    return chosen


def _as_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**47 else None
    if isinstance(value, datetime):
        return to_ms(value) if value.tzinfo else None
    if isinstance(value, str) and value.isascii() and len(value) <= 40:
        text = value.strip()
        if text.isdigit():
            return int(text) if len(text) <= 14 else None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return to_ms(moment) if moment.tzinfo else None
    return None


def start(
    schedule: ScheduledTask, start: Any, end: Any, chosen: Any, timezone: Any = None
) -> Backfill:
    """Claim the chosen occurrences of [start, end) not run yet (each once, whoever else
    claims them) and audit the backfill; the caller commits, then calls :func:`dispatch`."""
    span = window(start, end, timezone or schedule.timezone)
    listed = {to_ms(o.moment): o for o in listing(schedule, span)}
    moments = _chosen(chosen, listed)
    runs, skipped = claim(schedule, moments)
    task_ids = [run.task_id or "" for run in runs]
    entry = record_audit(
        ACTION,
        "schedule",
        schedule.id,
        details={
            "start": span.start.isoformat(),
            "end": span.end.isoformat(),
            "timezone": span.timezone,
            "chosen": len(set(to_ms(m) for m in moments)),
            "skipped": skipped,
            "task_ids": task_ids,
        },
    )
    db.session.flush()
    return Backfill(entry.id, schedule.id, runs, skipped, task_ids)


def dispatch(backfill: Backfill) -> None:
    """Queue the sending of a committed backfill on the maintenance queue; when the broker
    refuses, its runs are marked not sent (so they can be backfilled again) and committed."""
    if not backfill.task_ids:
        return
    celery = current_app.extensions["celery"]
    try:
        celery.send_task(SEND_TASK, args=[backfill.schedule_id, backfill.task_ids])
    except Exception as exc:
        error = _("The backfill could not be queued: %(error)s", error=f"{type(exc).__name__}")
        for run in backfill.runs:
            if run.sent_at is None and run.error is None:
                run.error = error
        db.session.commit()


def progress(schedule: ScheduledTask, audit_id: int) -> Progress:
    """The state of backfill ``audit_id`` of ``schedule``, or NotFound."""
    entry = db.session.get(AuditEntry, audit_id) if key_fits(AuditEntry, audit_id) else None
    if (
        entry is None
        or entry.action != ACTION
        or entry.target_id != str(schedule.id)
        or not isinstance(entry.details, dict)
    ):
        raise NotFound(_("No such backfill of %(name)s.", name=schedule.name))
    details = entry.details
    task_ids = [t for t in details.get("task_ids") or [] if isinstance(t, str)]
    runs: list[ScheduleRun] = []
    if task_ids:
        query = select(ScheduleRun).where(
            ScheduleRun.schedule_id == schedule.id,
            ScheduleRun.kind == RunKind.BACKFILL,
            ScheduleRun.task_id.in_(task_ids),
        )
        runs = sorted(db.session.scalars(query), key=lambda run: run.occurrence)
    return Progress(
        audit_id,
        datetime.fromisoformat(details.get("start") or utcnow().isoformat()),
        datetime.fromisoformat(details.get("end") or utcnow().isoformat()),
        int(details.get("chosen") or 0),
        int(details.get("skipped") or 0),
        runs,
    )
