"""What the schedule watch says, for the pages, the API, ``/metrics`` and health.

Assessed live from the database (app.watch.facts) on each read, so a page is right even while
no watcher runs; the watcher's own rows only remember alerts and its heartbeat says it is up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from app.extensions import db
from app.models import ScheduledTask
from app.models.types import utcnow
from app.watch.facts import Watched, watch
from app.watch.states import WatchState

# Nothing wrong: the schedule does what it should (a new one waits for its first run).
FINE = frozenset({WatchState.ON_TIME, WatchState.NEVER_RUN})


@dataclass(frozen=True)
class Overview:
    """The enabled schedules, those that need an operator first, and how many are fine."""

    watched: list[Watched] = field(default_factory=list)

    @property
    def enabled(self) -> int:
        return len(self.watched)

    @property
    def fine(self) -> int:
        return sum(1 for w in self.watched if w.assessment.state in FINE)

    @property
    def late(self) -> int:
        return sum(1 for w in self.watched if w.assessment.state == WatchState.LATE)


URGENCY = {
    WatchState.LATE: 0,
    WatchState.OVERRUNNING: 1,
    WatchState.FAILING: 2,
    WatchState.PAUSED: 3,
    WatchState.NEVER_RUN: 4,
}


def assessments(schedules: list[ScheduledTask], with_successes: bool = False) -> dict[int, Watched]:
    return {w.schedule.id: w for w in watch(schedules, utcnow(), with_successes)}


def enabled_schedules() -> list[ScheduledTask]:
    query = select(ScheduledTask).where(ScheduledTask.enabled.is_(True))
    return list(db.session.scalars(query.order_by(ScheduledTask.name)))


def overview() -> Overview:
    """Every enabled schedule assessed, the most urgent first (then by name)."""
    watched = watch(enabled_schedules(), utcnow())
    watched.sort(
        key=lambda w: (
            URGENCY.get(w.assessment.state, 9),
            -w.assessment.overdue_seconds,
            w.schedule.name,
        )
    )
    return Overview(watched)


def all_watched() -> list[Watched]:
    """Every schedule with its state and last success (``/metrics``)."""
    schedules = list(db.session.scalars(select(ScheduledTask).order_by(ScheduledTask.id)))
    return watch(schedules, utcnow(), with_successes=True)
