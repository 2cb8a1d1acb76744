"""A schedule's watch state from the facts about it: pure rules, no database, no clock.

The expected occurrence is computed by the same timing code as beat (``next_run`` after the
later of the schedule's last non-manual occurrence and the moment it was (re)timed), so the DST
policy of ``app.scheduler.timing`` holds here too: a 02:30 crontab on a spring-forward day is
expected at 03:00, and once on a fall-back day. An occurrence beat recorded as missed (skip
policy) counts as handled: the operator chose to skip it; so does one skipped by the overlap
policy, and one that waits (``queue_one``) while the previous run still runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from app.bounds import MAX_DELAY_SECONDS
from app.scheduler.timing import Timing, next_run, to_ms

MIN_DEFAULT_GRACE = timedelta(minutes=1)
MAX_DEFAULT_GRACE = timedelta(minutes=30)
ONE_TIME_GRACE = timedelta(minutes=10)
GRACE_SHARE = 0.1  # of the time between two occurrences
MAX_SECONDS = MAX_DELAY_SECONDS  # the largest grace or maximum duration an operator may set

ENDED = frozenset({"success", "failure", "revoked", "error", "missed"})
FAILED = frozenset({"failure", "error"})


class WatchState(enum.StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    OVERRUNNING = "overrunning"
    FAILING = "failing"
    PAUSED = "paused"  # enabled, but no occurrence is left (expired)
    DISABLED = "disabled"
    NEVER_RUN = "never_run"


# The states an operator is alerted about (and told when they end).
ALERTING = frozenset({WatchState.LATE, WatchState.OVERRUNNING, WatchState.FAILING})


@dataclass(frozen=True)
class LatestSend:
    """A schedule's latest sent occurrence (scheduled, catch-up or manual) and its outcome."""

    occurrence: datetime
    sent_at: datetime | None
    send_error: str | None  # beat could not send it
    status: str | None  # its pipeline run's (or execution's) status; None: not tracked yet
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None = None
    failed_step: str | None = None
    task_id: str | None = None
    pipeline_run_id: int | None = None

    @property
    def outcome(self) -> str:
        if self.send_error:
            return "error"
        return self.status or "sent"

    @property
    def started(self) -> bool:
        return self.started_at is not None or self.outcome in ENDED

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.outcome not in ENDED


@dataclass(frozen=True)
class Facts:
    """What the watch knows about one schedule."""

    enabled: bool
    timing: Timing
    scheduled_from: datetime
    grace_seconds: int | None
    max_duration_seconds: int | None
    last_occurrence: datetime | None  # latest non-manual occurrence, missed ones included
    latest_send: LatestSend | None
    overlap: str = "allow"  # the overlap policy: skip and queue_one hold back while a run runs


@dataclass(frozen=True)
class Assessment:
    state: WatchState
    grace: timedelta
    occurrence: datetime | None = None  # the occurrence the state is about
    expected: datetime | None = None  # the next occurrence the watch waits for
    overdue_seconds: float = 0.0  # late: past its due time; overrunning: past the maximum
    cause: str | None = None  # late: "not_sent" or "not_started"
    latest_send: LatestSend | None = None

    @property
    def alert_key(self) -> str | None:
        """Identifies one alert: one per schedule, state and occurrence."""
        if self.state not in ALERTING or self.occurrence is None:
            return None
        return f"{self.state}:{to_ms(self.occurrence)}"


def default_grace(timing: Timing, around: datetime | None) -> timedelta:
    """10% of the time between two occurrences, between 1 and 30 minutes (one-time: 10 min)."""
    if timing.kind == "interval" and timing.interval_seconds:
        period = timedelta(seconds=timing.interval_seconds)
    elif timing.kind == "crontab" and around is not None:
        following = next_run(timing, around)
        if following is None:
            return ONE_TIME_GRACE
        period = following - around
    else:
        return ONE_TIME_GRACE
    return min(MAX_DEFAULT_GRACE, max(MIN_DEFAULT_GRACE, period * GRACE_SHARE))


def expected_after(facts: Facts) -> datetime:
    """Occurrences after this moment are expected (beat's own rule for the next due time)."""
    if facts.last_occurrence is None:
        return facts.scheduled_from
    return max(facts.scheduled_from, facts.last_occurrence)


class _Common(TypedDict):
    """The fields every assessment of an enabled schedule carries."""

    grace: timedelta
    expected: datetime | None
    latest_send: LatestSend | None


def assess(facts: Facts, now: datetime) -> Assessment:
    """The state of one schedule at ``now``; the most urgent one wins."""
    if not facts.enabled:
        return Assessment(WatchState.DISABLED, timedelta(0), latest_send=facts.latest_send)
    expected = next_run(facts.timing, expected_after(facts))
    grace = (
        timedelta(seconds=facts.grace_seconds)
        if facts.grace_seconds
        else default_grace(facts.timing, expected)
    )
    send = facts.latest_send
    common: _Common = {"grace": grace, "expected": expected, "latest_send": send}
    # An occurrence held back by the overlap policy while the previous run runs is not late
    # (queue_one sends it when the run ends; skip records it skipped).
    held_back = facts.overlap != "allow" and send is not None and send.running
    if expected is not None and now > expected + grace and not held_back:
        overdue = (now - expected).total_seconds()
        return Assessment(
            WatchState.LATE,
            occurrence=expected,
            overdue_seconds=overdue,
            cause="not_sent",
            **common,
        )
    if send is not None and not send.started:
        since = send.sent_at or send.occurrence
        if now > since + grace:
            overdue = (now - since).total_seconds()
            return Assessment(
                WatchState.LATE,
                occurrence=send.occurrence,
                overdue_seconds=overdue,
                cause="not_started",
                **common,
            )
    if send is not None and send.running and facts.max_duration_seconds:
        began = send.started_at or send.occurrence
        limit = timedelta(seconds=facts.max_duration_seconds)
        if now > began + limit:
            overdue = (now - began - limit).total_seconds()
            return Assessment(
                WatchState.OVERRUNNING,
                occurrence=send.occurrence,
                overdue_seconds=overdue,
                **common,
            )
    if send is not None and send.outcome in FAILED:
        return Assessment(WatchState.FAILING, occurrence=send.occurrence, **common)
    if expected is None and (send is None or not send.running):
        return Assessment(WatchState.PAUSED, **common)
    if send is None:
        return Assessment(WatchState.NEVER_RUN, **common)
    return Assessment(WatchState.ON_TIME, occurrence=send.occurrence, **common)
