"""The beat scheduler driven tick by tick in this process, against the real Redis and database."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler import service
from app.scheduler.beat import RedisScheduler
from app.scheduler.store import get_store
from app.scheduler.timing import from_ms, to_ms
from tests.factories import HEALTH
from tests.scheduler_support import scheduled_headers


def beat(app: Flask) -> RedisScheduler:
    return RedisScheduler(app.extensions["celery"])


def runs(schedule_id: int) -> list[ScheduleRun]:
    db.session.expire_all()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)
    return list(db.session.scalars(query.order_by(ScheduleRun.occurrence)))


def every_minute_since(minutes: int, policy: str) -> ScheduledTask:
    """An every-minute schedule whose beat was down for ``minutes`` (anchor in the past)."""
    anchor = (utcnow() - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    schedule = service.create_schedule(
        name=f"minutely-{policy}", task=HEALTH, kind="interval", interval_every=1,
        interval_unit="minutes", start_at=anchor, misfire_policy=policy,
    )  # fmt: skip
    db.session.commit()
    schedule.scheduled_from = anchor  # as if created back then
    db.session.commit()
    get_store().remove(schedule.id)  # Redis is rebuilt when beat starts
    return schedule


@pytest.mark.parametrize("policy", ["run_once", "skip"])
def test_misfire_policy(app: Flask, redis_client: redis.Redis, policy: str) -> None:
    schedule = every_minute_since(10, policy)
    scheduler = beat(app)
    assert from_ms(get_store().due_ms(schedule.id)) < utcnow() - timedelta(minutes=5)
    scheduler.tick()
    history = runs(schedule.id)
    sent = scheduled_headers(redis_client)
    missed = [r for r in history if r.kind == RunKind.MISSED]
    assert len(history) in (10, 11)  # the minute may turn during the test
    if policy == "run_once":
        [catchup] = [r for r in history if r.kind == RunKind.CATCHUP]
        assert catchup.occurrence == history[-1].occurrence  # the latest missed one runs, late
        assert [h["id"] for h in sent] == [catchup.task_id]
        assert sent[0]["ewas_run_kind"] == "catchup"
        assert len(missed) == len(history) - 1
    else:
        assert sent == [] and missed == history
    assert from_ms(get_store().due_ms(schedule.id)) > utcnow()  # resumes in the future
    scheduler.tick()
    assert len(runs(schedule.id)) == len(history)  # nothing fires twice
    scheduler.close()


def test_one_time_fires_once_then_is_disabled(app: Flask, redis_client: redis.Redis) -> None:
    # Far enough ahead that a loaded machine still ticks once before it is due.
    run_at = utcnow() + timedelta(seconds=4)
    schedule = service.create_schedule(name="once", task=HEALTH, kind="one_time", run_at=run_at)
    db.session.commit()
    scheduler = beat(app)
    scheduler.tick()
    assert scheduled_headers(redis_client) == []  # not due yet
    time.sleep(max(0.0, (run_at - utcnow()).total_seconds()) + 0.2)  # the clock, not a process
    scheduler.tick()
    scheduler.tick()
    [run] = runs(schedule.id)
    assert run.kind == RunKind.SCHEDULED and run.task_id and run.sent_at
    [headers] = scheduled_headers(redis_client)
    assert headers["id"] == run.task_id
    assert headers["ewas_occurrence"] == schedule.run_at.isoformat()
    db.session.refresh(schedule)
    assert not schedule.enabled and schedule.total_run_count == 1
    assert get_store().due_ms(schedule.id) is None
    scheduler.close()


def test_a_failed_send_is_recorded(make_app, redis_client: redis.Redis, redis_url: str) -> None:
    """The broker refuses connections, the schedule store works: the run says why it failed."""
    from tests.support import REFUSED_PORT

    app = make_app(
        REDIS_URL=f"redis://127.0.0.1:{REFUSED_PORT}/0",
        SCHEDULER_REDIS_URL=redis_url,
        CELERY={"broker_connection_max_retries": 1, "broker_connection_timeout": 1,
                "task_publish_retry_policy": {"max_retries": 0}},
    )  # fmt: skip
    with app.app_context():
        from tests.conftest import empty_database

        empty_database()
        schedule = service.create_schedule(
            name="doomed", task=HEALTH, kind="one_time", run_at=utcnow() + timedelta(seconds=0.2)
        )
        db.session.commit()
        time.sleep(0.3)  # until it is due: the clock, not a process
        scheduler = RedisScheduler(app.extensions["celery"])
        scheduler.tick()
        [run] = runs(schedule.id)
        assert run.error and run.sent_at is None and run.task_id
        scheduler.close()
        db.session.remove()


def test_a_beat_without_the_lock_sends_nothing(app: Flask, redis_client: redis.Redis) -> None:
    schedule = service.create_schedule(
        name="soon", task=HEALTH, kind="one_time", run_at=utcnow() + timedelta(seconds=0.2)
    )
    db.session.commit()
    time.sleep(0.3)  # until it is due: the clock, not a process
    leader, standby = beat(app), beat(app)
    store = get_store()
    store.client.set(store.key("lock"), "someone-else", px=60_000)
    assert leader.tick() > 0 and standby.tick() > 0
    assert scheduled_headers(redis_client) == [] and runs(schedule.id) == []
    # A stale token (the lock moved on while this beat was paused) cannot claim either.
    assert store.claim("old-token", 1000, schedule.id, store.due_ms(schedule.id),
                       store.due_ms(schedule.id), None, None) == -1  # fmt: skip
    store.client.delete(store.key("lock"))
    leader.tick()
    standby.tick()
    assert len(scheduled_headers(redis_client)) == 1
    leader.close()
    standby.close()


def test_claims_survive_edits_and_rebuilds(app: Flask, redis_client: redis.Redis) -> None:
    """An occurrence already claimed is never claimed again, whatever is written to due."""
    schedule = service.create_schedule(
        name="every-sec", task=HEALTH, kind="interval", interval_every=1, interval_unit="seconds",
        start_at=utcnow() - timedelta(seconds=3),
    )  # fmt: skip
    db.session.commit()
    store = get_store()
    scheduler = beat(app)
    store.client.zadd(store.key("due"), {schedule.id: to_ms(utcnow()) - 500})
    due = store.due_ms(schedule.id)
    scheduler.tick()
    first = [h["ewas_occurrence"] for h in scheduled_headers(redis_client)]
    assert first, "the due entry was not sent"
    store.client.zadd(store.key("due"), {schedule.id: due})  # a stale writer puts it back
    scheduler.tick()
    occurrences = [h["ewas_occurrence"] for h in scheduled_headers(redis_client)]
    assert len(occurrences) == len(set(occurrences))  # nothing claimed twice...
    assert set(first) <= set(occurrences)  # ...and what was sent stays sent
    assert all(o > max(first) for o in set(occurrences) - set(first))  # only later ones follow
    scheduler.close()


def test_chain_steps_are_linked(app: Flask, redis_client: redis.Redis, start_worker) -> None:
    """A real worker runs step one (data_processing queue); step two is then published with
    its own id, linked to step one by parent and root ids and carrying the run's headers."""
    schedule = service.create_schedule(
        name="validate-then-check", task="data_pipeline.tasks.validate_data", kind="crontab",
        crontab="0 0 1 1 *", chain=[{"task": HEALTH}],
    )  # fmt: skip
    db.session.commit()
    run = service.run_now(schedule)
    db.session.commit()
    [first] = scheduled_headers(redis_client)
    assert first["id"] == run.task_id and first["task"] == "data_pipeline.tasks.validate_data"
    start_worker(queues="data_processing")
    from tests.support import wait_for

    def second_step():
        steps = [h for h in scheduled_headers(redis_client) if h["task"] == HEALTH]
        return steps[0] if steps else None

    second = wait_for(second_step, timeout=60)
    assert second["id"] != run.task_id
    assert second["parent_id"] == run.task_id and second["root_id"] == run.task_id
    assert second["ewas_schedule_id"] == schedule.id and second["ewas_run_kind"] == "manual"


def test_beat_stands_by_while_redis_is_unreachable(make_app) -> None:
    """No crash and no sends without the store; it rebuilds and leads once Redis answers."""
    from tests.support import REFUSED_PORT

    app = make_app(SCHEDULER_REDIS_URL=f"redis://127.0.0.1:{REFUSED_PORT}/0")
    with app.app_context():
        scheduler = RedisScheduler(app.extensions["celery"])
        assert 0 < scheduler.tick() <= 2.0  # a short backoff, not a crash
        assert scheduler.token is None
        scheduler.close()
        db.session.remove()


def test_run_history_is_pruned_after_the_retention(app: Flask) -> None:
    from app.scheduler import history

    schedule = service.create_schedule(
        name="kept", task=HEALTH, kind="crontab", crontab="0 * * * *"
    )
    db.session.flush()
    for age in (100, 10):
        created = utcnow() - timedelta(days=age)
        db.session.add(ScheduleRun(schedule_id=schedule.id, occurrence=created, created_at=created,
                                   kind=RunKind.MISSED))  # fmt: skip
    db.session.commit()
    assert history.prune(app.config["SCHEDULER_RUN_RETENTION_DAYS"]) == 1
    db.session.commit()
    assert [r.occurrence.date() for r in runs(schedule.id)] == [
        (utcnow() - timedelta(days=10)).date()
    ]
