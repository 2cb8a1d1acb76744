"""Real beat processes against the real Redis: exactly-once firing, failover, one-time entries.

Timing margins are generous (the machine is shared); what is asserted exactly is that each
occurrence is sent once and none is lost.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import datetime, timedelta

import redis
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler import service
from app.scheduler.store import get_store
from tests.factories import HEALTH
from tests.scheduler_support import (
    BeatProcess,
    expected,
    fired,
    leader_among,
    leader_pid,
    scheduled_headers,
)
from tests.support import wait_for


def interval_schedules(seconds: list[int]) -> list[ScheduledTask]:
    schedules = [
        service.create_schedule(name=f"every-{s}s", task=HEALTH, kind="interval",
                                interval_every=s, interval_unit="seconds")
        for s in seconds
    ]  # fmt: skip
    db.session.commit()
    return schedules


def test_three_beats_fire_each_occurrence_once_across_a_paused_leader(
    app: Flask, redis_client: redis.Redis, start_beat
) -> None:
    schedules = interval_schedules([1, 2, 3, 5])
    beats = [start_beat(SCHEDULER_LOCK_TTL="3") for _ in range(3)]
    first = leader_among(redis_client, beats)
    wait_for(lambda: sends(first) >= 10, timeout=60)
    first.signal(signal.SIGSTOP)  # paused past its lock TTL...
    second = leader_among(redis_client, [b for b in beats if b is not first])
    wait_for(lambda: sends(second) >= 5, timeout=60)
    first.signal(signal.SIGCONT)  # ...then resumed: it must notice and send nothing stale
    wait_for(lambda: "lost the scheduler lock" in first.log(), timeout=60)
    resumed_at = sends(second)
    wait_for(lambda: sends(second) >= resumed_at + 5, timeout=60)
    assert leader_pid(redis_client) == second.pid  # the resumed beat did not take it back
    until = utcnow() - timedelta(seconds=2)
    for beat in beats:
        beat.stop()
    counts = fired(redis_client)
    duplicates = {k: n for k, n in counts.items() if n > 1}
    assert not duplicates, duplicates
    missing = expected(schedules, until) - set(counts)
    assert not missing, sorted(missing)
    unexpected = set(counts) - expected(schedules, utcnow())
    assert not unexpected, sorted(unexpected)


def sends(beat: BeatProcess) -> int:
    """How many occurrences this beat process says it sent."""
    return beat.log().count("beat: sent ")


def sends_after(moment: datetime, schedule_id: int) -> list[ScheduleRun]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id,
                                  ScheduleRun.occurrence > moment)
        .order_by(ScheduleRun.occurrence)
    ))  # fmt: skip


def worst_lateness(moment: datetime, schedule_id: int) -> float:
    """The largest send delay among the first occurrences after ``moment``."""
    runs = wait_for(lambda: (r := sends_after(moment, schedule_id)) and len(r) >= 5 and r,
                    timeout=90)  # fmt: skip
    return max((r.sent_at - r.occurrence).total_seconds() for r in runs[:5])


def test_standby_takes_over_after_sigkill_and_sigterm(
    app: Flask, redis_client: redis.Redis, start_beat
) -> None:
    ttl = 8
    [schedule] = interval_schedules([1])
    beats = [start_beat(SCHEDULER_LOCK_TTL=str(ttl)) for _ in range(2)]
    leader = leader_among(redis_client, beats)
    wait_for(lambda: sends(leader) >= 3, timeout=60)
    killed_at = utcnow()
    leader.signal(signal.SIGKILL)
    # The lock expires with its TTL: the standby takes over in seconds (RedBeat: 25 minutes).
    assert worst_lateness(killed_at, schedule.id) <= ttl + 6
    standby = start_beat(SCHEDULER_LOCK_TTL=str(ttl))
    leader = leader_among(redis_client, [b for b in beats if b.running()])
    wait_for(lambda: "beat: Starting" in standby.log(), timeout=60)
    before = sends(leader)
    wait_for(lambda: sends(leader) >= before + 3, timeout=60)
    stopped_at = utcnow()
    leader.signal(signal.SIGTERM)  # a clean stop releases the lock: takeover on the next tick
    assert worst_lateness(stopped_at, schedule.id) < ttl
    counts = fired(redis_client)
    assert max(counts.values()) == 1
    missing = expected([schedule], utcnow() - timedelta(seconds=3)) - set(counts)
    assert not missing, sorted(missing)


def test_a_thousand_one_time_entries_fire_once_across_a_leader_crash(
    app: Flask, redis_client: redis.Redis, start_beat
) -> None:
    beats = [start_beat(SCHEDULER_LOCK_TTL="3") for _ in range(2)]
    leader = leader_among(redis_client, beats)
    base = utcnow() + timedelta(seconds=15)
    ids = []
    for n in range(1000):
        schedule = service.create_schedule(
            name=f"once-{n}",
            task=HEALTH,
            kind="one_time",
            run_at=base + timedelta(milliseconds=5 * n),
        )
        ids.append(schedule.id)
    db.session.commit()
    assert utcnow() < base, "creating the entries took too long for this test's margins"
    wait_for(lambda: len(scheduled_headers(redis_client)) >= 200, timeout=60, interval=0.05)
    leader.signal(signal.SIGKILL)
    wait_for(lambda: len(scheduled_headers(redis_client)) >= 1000, timeout=90, interval=0.5)
    store = get_store()
    # Nothing left to send: every entry finished and removed, no claim still in flight.
    wait_for(lambda: not store.entry_ids() and not store.inflight(), timeout=60, interval=0.5)
    counts = Counter(h["ewas_schedule_id"] for h in scheduled_headers(redis_client))
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
