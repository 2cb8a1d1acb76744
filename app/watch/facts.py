"""The facts the watch judges, read from the database in a few bounded queries.

Pages, the API, ``/metrics`` and the watcher all assess schedules through :func:`watch`, so
they never disagree, and a page shows the right state even when the watcher is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.models import ScheduledTask
from app.runs.outcome import latest_outcomes, latest_successes
from app.scheduler.projection import entry_data, last_occurrences, timing_of
from app.watch.states import Assessment, Facts, LatestSend, assess


@dataclass(frozen=True)
class Watched:
    schedule: ScheduledTask
    assessment: Assessment
    last_success: datetime | None = None


def latest_sends(ids: list[int]) -> dict[int, LatestSend]:
    """Each schedule's latest sent (not missed, not skipped) occurrence with its outcome."""
    return {
        schedule_id: LatestSend(
            occurrence=run.occurrence,
            sent_at=run.sent_at,
            send_error=run.error,
            status=status,
            started_at=started,
            finished_at=finished,
            error_message=error,
            failed_step=failed_step,
            task_id=run.task_id,
            pipeline_run_id=run_id,
        )
        for schedule_id, (run, status, started, finished, error, run_id, failed_step) in (
            latest_outcomes(ids, include_missed=False).items()
        )
    }


def facts_of(schedule: ScheduledTask, last: datetime | None, send: LatestSend | None) -> Facts:
    return Facts(
        enabled=schedule.enabled,
        timing=timing_of(entry_data(schedule)),
        scheduled_from=schedule.scheduled_from,
        grace_seconds=schedule.grace_seconds,
        max_duration_seconds=schedule.max_duration_seconds,
        last_occurrence=last,
        latest_send=send,
        overlap=str(schedule.overlap_policy or "allow"),
    )


def watch(
    schedules: list[ScheduledTask], now: datetime, with_successes: bool = False
) -> list[Watched]:
    """Each schedule's assessment at ``now`` (and its last success when asked)."""
    ids = [s.id for s in schedules]
    if not ids:
        return []
    lasts = last_occurrences(ids)
    sends = latest_sends(ids)
    successes = latest_successes(ids) if with_successes else {}
    return [
        Watched(
            schedule,
            assess(facts_of(schedule, lasts.get(schedule.id), sends.get(schedule.id)), now),
            successes.get(schedule.id),
        )
        for schedule in schedules
    ]
