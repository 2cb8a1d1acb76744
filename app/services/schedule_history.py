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
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select

from app.extensions import db
from app.models import RunKind, ScheduleRun
from app.monitoring.percentiles import nearest_rank
from app.runs.outcome import ERROR_TEXT, join_outcome, outcome_columns

HISTORY_PAGE_SIZE = 25
STATS_WINDOW = 500  # statistics cover the latest runs, not all time
TOP_ERRORS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MAX_RUN_ID = 2**63 - 1


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


def encode_cursor(run: ScheduleRun) -> str:
    """The keyset position after ``run``: its occurrence (exact, in microseconds) and id."""
    return f"{(run.occurrence - EPOCH) // MICROSECOND}_{run.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(occurrence, id)`` from a cursor; ValueError when it is not one of ours."""
    micros, _, run_id = cursor.partition("_")
    try:
        occurrence = EPOCH + int(micros) * MICROSECOND
    except OverflowError:
        raise ValueError(cursor) from None
    if not 0 < int(run_id) <= MAX_RUN_ID:
        raise ValueError(cursor)
    return occurrence, int(run_id)


def history_page(
    schedule_id: int, cursor: str | None = None, size: int = HISTORY_PAGE_SIZE
) -> tuple[list[HistoryEntry], str | None]:
    """Runs newest first, from ``cursor`` on; returns them and the next page's cursor."""
    query = (
        join_outcome(select(ScheduleRun, *outcome_columns()), ScheduleRun.task_id)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.occurrence.desc(), ScheduleRun.id.desc())
        .limit(size + 1)
    )
    if cursor is not None:
        occurrence, run_id = decode_cursor(cursor)
        query = query.where(
            or_(
                ScheduleRun.occurrence < occurrence,
                and_(ScheduleRun.occurrence == occurrence, ScheduleRun.id < run_id),
            )
        )
    rows = db.session.execute(query).all()
    entries = [HistoryEntry(*row) for row in rows[:size]]
    following = encode_cursor(entries[-1].run) if len(rows) > size else None
    return entries, following


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
