"""A schedule's run history and performance, read through its run rows.

Each run row names the task id it was sent with, so history and statistics walk the
``(schedule_id, occurrence)`` index of the run rows and join the pipeline run rooted at that
task id (its status is the outcome of all the work the send started, chain steps and sent tasks
included): the cost depends on the page or window size, never on how many executions exist.
An occurrence whose run the recorder has not seen yet falls back to its execution, if any.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import RunKind, ScheduleRun
from app.monitoring.percentiles import nearest_rank
from app.paging import decode, encode, keyset_page
from app.runs.outcome import ERROR_TEXT, join_outcome, outcome_columns

HISTORY_PAGE_SIZE = 25
STATS_WINDOW = 500  # statistics cover the latest runs, not all time
TOP_ERRORS = 5
HISTORY_KEY = (ScheduleRun.occurrence, ScheduleRun.id)


@dataclass(frozen=True)
class HistoryEntry:
    """One run row and, when it was sent and tracked, the outcome of its pipeline run."""

    run: ScheduleRun
    status: str | None  # a run status (running, success, failure, revoked) or an execution's
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    pipeline_run_id: int | None = None
    failed_step: str | None = None

    @property
    def outcome(self) -> str:
        if self.run.kind == RunKind.MISSED:
            return "missed"
        if self.run.kind == RunKind.SKIPPED:
            return "skipped"
        if self.run.error:
            return "error"
        return self.status if self.status is not None else "sent"

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()


def history_page(
    schedule_id: int, cursor: str | None = None, size: int = HISTORY_PAGE_SIZE
) -> tuple[list[HistoryEntry], str | None]:
    """Runs newest first, from ``cursor`` on; returns them and the next page's cursor.

    Raises :class:`app.paging.BadCursor` for a cursor that is not one of ours."""
    query = join_outcome(select(ScheduleRun, *outcome_columns()), ScheduleRun.task_id).where(
        ScheduleRun.schedule_id == schedule_id
    )
    at = decode(cursor, HISTORY_KEY) if cursor is not None else None
    page = keyset_page(query, HISTORY_KEY, size, at, key_of=lambda row: _key(row[0]))
    return [HistoryEntry(*row) for row in page.rows], encode(page.next)


def _key(run: ScheduleRun) -> tuple[datetime, int]:
    return run.occurrence, run.id


@dataclass
class ScheduleStats:
    """Outcomes and durations of a schedule's latest runs (at most ``STATS_WINDOW``)."""

    runs: int = 0
    missed: int = 0
    skipped: int = 0  # not sent: the previous run was still running (overlap policy)
    send_errors: int = 0
    successes: int = 0
    failures: int = 0
    durations: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return self.successes + self.failures

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.finished if self.finished else None

    @property
    def average(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    @property
    def p95(self) -> float | None:
        """Exact: at most ``STATS_WINDOW`` durations."""
        return nearest_rank(self.durations, 0.95)

    def top_errors(self, count: int = TOP_ERRORS) -> list[tuple[str, int]]:
        return self.errors.most_common(count)


def schedule_stats(schedule_id: int, window: int = STATS_WINDOW) -> ScheduleStats:
    """Success rate, durations and frequent errors over the latest ``window`` runs."""
    recent = (
        select(ScheduleRun.kind, ScheduleRun.task_id, ScheduleRun.error)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.occurrence.desc(), ScheduleRun.id.desc())
        .limit(window)
        .subquery()
    )
    rows = db.session.execute(
        join_outcome(
            select(recent.c.kind, recent.c.error, *outcome_columns()[:4]).select_from(recent),
            recent.c.task_id,
        )
    )
    stats = ScheduleStats()
    for kind, send_error, status, started, completed, error_message in rows:
        stats.runs += 1
        if kind == RunKind.MISSED:
            stats.missed += 1
        elif kind == RunKind.SKIPPED:
            stats.skipped += 1
        elif send_error:
            stats.send_errors += 1
            stats.errors[_first_line(send_error)] += 1
        elif status == "success":
            stats.successes += 1
        elif status in ("failure", "revoked"):
            stats.failures += 1
            if error_message:
                stats.errors[_first_line(error_message)] += 1
        if started is not None and completed is not None:
            stats.durations.append((completed - started).total_seconds())
    return stats


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:ERROR_TEXT] if text.strip() else text
