"""Beat heals itself: a lost or partial Redis projection is rebuilt from the database, run rows
wait in an outbox while the database is down, and nothing is sent twice.

The first tests drive the scheduler tick by tick in this process; the last ones run real beat
processes against a schedule store (a redis-server of their own) they flush or restart, while
the broker stays on the test Redis so every sent message can be compared with the run rows.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import redis
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import RunKind, ScheduleRun
from app.models.types import utcnow
from app.scheduler import history, service
from app.scheduler.beat import RedisScheduler
from app.scheduler.store import get_store, projection_state
from tests.scheduler_support import scheduled_headers

HEALTH = "task_monitoring.tasks.health_check"


def runs(schedule_id: int) -> list[ScheduleRun]:
    db.session.expire_all()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)
    return list(db.session.scalars(query.order_by(ScheduleRun.occurrence)))


def every_second(name: str = "every-1s", **values) -> int:
    schedule = service.create_schedule(
        name=name, task=HEALTH, kind="interval", interval_every=1, interval_unit="seconds",
        start_at=utcnow() - timedelta(seconds=0.5), **values,
    )  # fmt: skip
    db.session.commit()
    return schedule.id


def forget_projection(client: redis.Redis, prefix: str = "ewas:sched") -> None:
    """What FLUSHDB does to the scheduler, leaving the broker's queued messages in place."""
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def tick_for(scheduler: RedisScheduler, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(scheduler.tick(), 0.2))


def test_a_lost_projection_is_rebuilt_on_the_next_tick(app: Flask, redis_client) -> None:
    schedule_id = every_second()
    scheduler = RedisScheduler(app.extensions["celery"])
    assert projection_state(get_store())["complete"]
    tick_for(scheduler, 2.5)
    before = runs(schedule_id)
    assert before
    forget_projection(redis_client)
    state = projection_state(get_store())
    assert state == {"complete": False, "entries": 0, "expected": None, "rebuilt_at": None,
                     "runs_waiting": 0}  # fmt: skip
    scheduler.tick()  # the lock went too: stands by
    scheduler.tick()  # leads again, notices, rebuilds
    state = projection_state(get_store())
    assert state["complete"] and state["entries"] == state["expected"] == 1
    assert state["rebuilt_at"]
    tick_for(scheduler, 2.5)
    after = runs(schedule_id)
    occurrences = Counter(r.occurrence for r in after)
    assert max(occurrences.values()) == 1  # nothing recorded twice
    assert len(after) > len(before)  # and it fires again
    sent = Counter(h["ewas_occurrence"] for h in scheduled_headers(redis_client))
    assert max(sent.values()) == 1
    assert {r.task_id for r in after if r.task_id} == {
        h["id"] for h in scheduled_headers(redis_client)
    }
    scheduler.close()


def test_a_due_entry_without_its_hash_is_rebuilt_not_removed(app: Flask, redis_client) -> None:
    schedule_id = every_second()
    scheduler = RedisScheduler(app.extensions["celery"])
    store = get_store()
    scheduler.tick()
    store.client.delete(store.key("entry", schedule_id))  # evicted
    tick_for(scheduler, 2.5)
    assert store.entries([schedule_id])[0] is not None
    assert store.due_ms(schedule_id) is not None
    assert scheduler.last_heal == "a due entry is missing"
    scheduler.close()


def test_fewer_entries_than_enabled_schedules_triggers_a_rebuild(app: Flask, redis_client) -> None:
    first = every_second("one")
    second = every_second("two")
    scheduler = RedisScheduler(app.extensions["celery"])
    store = get_store()
    scheduler.tick()
    store.remove(second)  # a lost write-through
    scheduler._last_count = 0.0  # the next tick counts the database (at most every 3 s)
    scheduler.tick()
    assert store.entries([first, second])[1] is not None
    assert projection_state(store)["complete"]
    scheduler.close()


def test_outbox_rows_are_recorded_once(app: Flask, redis_client) -> None:
    schedule_id = every_second()
    now = utcnow().replace(microsecond=0)
    outcomes = [
        history.Outcome(schedule_id, now, RunKind.SCHEDULED, "t-1", sent_at=now),
        history.Outcome(schedule_id, now + timedelta(seconds=1), RunKind.MISSED),
    ]
    rows = [o.to_row() for o in outcomes]
    assert [history.Outcome.from_row(r) for r in rows] == outcomes
    assert history.record(outcomes) == 2
    db.session.commit()
    assert history.record([history.Outcome.from_row(r) for r in rows]) == 0  # a retried drain
    db.session.commit()
    assert len([r for r in runs(schedule_id) if r.occurrence >= now]) == 2


def test_health_is_ok_only_when_a_beat_leads_over_a_complete_projection(
    app: Flask, client, redis_client
) -> None:
    from app.monitoring.health import health

    every_second()
    store = get_store()

    def beat_checks() -> tuple[dict, dict]:
        return health()["checks"]["beat"], client.get("/tasks/api/health/").json["checks"]["beat"]

    assert [c["ok"] for c in beat_checks()] == [False, False]  # no beat leads
    scheduler = RedisScheduler(app.extensions["celery"])
    scheduler.tick()
    monitoring, api = beat_checks()
    assert monitoring["ok"] and api["ok"] and api["projection"]["complete"]
    assert monitoring["projection"]["entries"] == monitoring["projection"]["expected"] == 1
    store.client.delete(store.key("projection"))  # the marker lost, the lock still held
    monitoring, api = beat_checks()
    assert not monitoring["ok"] and monitoring["active"] and not api["ok"]
    assert api["lock_holder"] and api["projection"]["complete"] is False
    scheduler.tick()  # rebuilds
    assert [c["ok"] for c in beat_checks()] == [True, True]
    scheduler.close()
