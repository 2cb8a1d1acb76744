"""Beat heals itself: a lost or partial Redis projection is rebuilt from the database, run rows
wait in an outbox while the database is down, and nothing is sent twice.

The first tests drive the scheduler tick by tick in this process; the last ones run real beat
processes against a schedule store (a redis-server of their own) they flush or restart, while
the broker stays on the test Redis so every sent message can be compared with the run rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import redis
from flask import Flask
from sqlalchemy import create_engine, make_url, select, text

from app.extensions import db
from app.models import Role, RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler import history, service
from app.scheduler.beat import RedisScheduler
from app.scheduler.store import get_store, projection_state
from tests.factories import HEALTH
from tests.scheduler_support import (
    BeatProcess,
    RedisServer,
    expected,
    fired,
    leader_among,
    scheduled_headers,
)
from tests.support import bearer, wait_for


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
    scheduler.keeper.count_now()  # the next tick counts the database (at most every 3 s)
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
    app: Flask, client, redis_client, token_for
) -> None:
    from app.monitoring.health import health

    every_second()
    store = get_store()
    viewer = bearer(token_for(Role.VIEWER))

    def beat_checks() -> tuple[dict, dict]:
        answer = client.get("/tasks/api/health/", headers=viewer).json
        return health()["checks"]["beat"], answer["checks"]["beat"]

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


# -- real beat processes ---------------------------------------------------------------------
BEAT_ENV = {"SCHEDULER_LOCK_TTL": "3", "SCHEDULER_MISFIRE_GRACE": "1"}


def every_two_seconds(app: Flask, store_url: str | None = None) -> list:
    """One every-2-seconds schedule per misfire policy, written to the store at ``store_url``."""
    if store_url:
        app.config["SCHEDULER_REDIS_URL"] = store_url
        app.extensions.pop("scheduler_store", None)
    schedules = [
        service.create_schedule(name=f"every-2s-{policy}", task=HEALTH, kind="interval",
                                interval_every=2, interval_unit="seconds", misfire_policy=policy)
        for policy in ("run_once", "skip")
    ]  # fmt: skip
    db.session.commit()
    return schedules


def all_runs(schedules: list) -> list[ScheduleRun]:
    db.session.expire_all()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id.in_([s.id for s in schedules]))
    return list(db.session.scalars(query.order_by(ScheduleRun.occurrence)))


def first_send_after(schedules: list, moment: datetime, timeout: float = 15) -> ScheduleRun:
    def sent() -> ScheduleRun | None:
        after = [r for r in all_runs(schedules) if r.sent_at and r.sent_at > moment]
        return min(after, key=lambda r: r.sent_at) if after else None

    return wait_for(sent, timeout=timeout, interval=0.1)


def more_sends(broker: redis.Redis, count: int, timeout: float = 60) -> None:
    """Wait until ``count`` more scheduled messages reached the broker (the beats run on)."""
    target = len(scheduled_headers(broker)) + count
    wait_for(lambda: len(scheduled_headers(broker)) >= target, timeout=timeout, interval=0.1)


def assert_exactly_once(schedules: list, broker: redis.Redis, until: datetime) -> list:
    """No occurrence sent or recorded twice, each sent run is a queued message and each
    queued message a sent run, and every occurrence up to ``until`` has its row.

    Rows a stopped beat left in the Redis outbox are not lost (the next leader writes them):
    they are drained first, as that leader would."""
    from flask import current_app

    from app.scheduler.healing import Keeper
    from app.scheduler.store import get_store

    assert Keeper(current_app._get_current_object(), get_store()).drain()
    db.session.expire_all()
    sent = fired(broker)
    assert sent and max(sent.values()) == 1, sent
    rows = all_runs(schedules)
    recorded = Counter((r.schedule_id, r.occurrence.isoformat()) for r in rows)
    assert max(recorded.values()) == 1, [k for k, n in recorded.items() if n > 1]
    assert {r.task_id for r in rows if r.sent_at} == {h["id"] for h in scheduled_headers(broker)}
    missing = expected(schedules, until) - set(recorded)
    assert not missing, sorted(missing)
    return rows


def assert_gap_per_policy(schedules: list, rows: list, start: datetime, end: datetime) -> None:
    """Occurrences due while beat could not fire: ``skip`` records them all missed, ``run_once``
    records the earlier ones missed and sends one catch-up for the latest."""
    run_once, skip = schedules
    gap = [r for r in rows if start < r.occurrence < end]
    skipped = [r.kind for r in gap if r.schedule_id == skip.id]
    assert skipped and set(skipped) == {RunKind.MISSED}, skipped
    caught = [r.kind for r in gap if r.schedule_id == run_once.id]
    assert caught[-1] == RunKind.CATCHUP and set(caught[:-1]) <= {RunKind.MISSED}, caught


def stop_all(beats: list[BeatProcess]) -> None:
    for beat in beats:
        assert beat.running(), beat.log()[-3000:]
        beat.stop()


def test_flushdb_while_two_beats_run(
    app: Flask, redis_client: redis.Redis, own_redis: RedisServer, start_beat: Callable
) -> None:
    schedules = every_two_seconds(app, own_redis.url)
    store = redis.Redis.from_url(own_redis.url)
    beats = [start_beat(SCHEDULER_REDIS_URL=own_redis.url, **BEAT_ENV) for _ in range(2)]
    leader_among(store, beats)
    first_send_after(schedules, utcnow(), timeout=30)
    more_sends(redis_client, 2)
    flushed_at = utcnow()
    store.flushdb()
    resumed = first_send_after(schedules, flushed_at)
    assert resumed.sent_at - flushed_at <= timedelta(seconds=5)
    wait_for(lambda: projection_state(get_store())["complete"], timeout=5)
    more_sends(redis_client, 4)  # the rebuilt projection keeps firing, once each
    until = utcnow() - timedelta(seconds=1.5)
    stop_all(beats)
    assert_exactly_once(schedules, redis_client, until)
    assert any("rebuilt" in b.log() and "marker missing" in b.log() for b in beats)


def test_redis_stopped_and_started_empty(
    app: Flask, redis_client: redis.Redis, own_redis: RedisServer, start_beat: Callable
) -> None:
    schedules = every_two_seconds(app, own_redis.url)
    store = redis.Redis.from_url(own_redis.url)
    beats = [start_beat(SCHEDULER_REDIS_URL=own_redis.url, **BEAT_ENV) for _ in range(2)]
    leader_among(store, beats)
    first_send_after(schedules, utcnow(), timeout=30)
    more_sends(redis_client, 2)
    stopped_at = utcnow()
    own_redis.stop()
    time.sleep(5)  # the scenario: 5 s of outage (the beats ride it out, sending nothing)
    own_redis.start()  # no persistence: it comes back empty
    restarted_at = utcnow()
    resumed = first_send_after(schedules, restarted_at)
    assert resumed.sent_at - restarted_at <= timedelta(seconds=5)
    more_sends(redis_client, 4)
    until = utcnow() - timedelta(seconds=1.5)
    stop_all(beats)
    rows = assert_exactly_once(schedules, redis_client, until)
    assert_gap_per_policy(schedules, rows, stopped_at + timedelta(seconds=1), restarted_at)
    for beat in beats:  # one line per outage, not one per tick
        assert beat.log().count("schedule store (Redis) unavailable") <= 1, beat.log()[-3000:]


@pytest.fixture
def postgres_admin(database_url: str):
    """An AUTOCOMMIT connection to the server's ``postgres`` database, and the test database."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("a database outage is simulated on PostgreSQL (TEST_DATABASE_URL)")
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        yield connection, url.database
        connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
    engine.dispose()


def test_database_outage_delays_run_rows_and_doubles_none(
    app: Flask, redis_client: redis.Redis, start_beat: Callable, postgres_admin
) -> None:
    admin, name = postgres_admin
    schedules = every_two_seconds(app)
    beats = [start_beat(**BEAT_ENV) for _ in range(2)]
    leader_among(redis_client, beats)
    first_send_after(schedules, utcnow(), timeout=30)
    db.session.remove()
    db.engine.dispose()
    admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
    terminate = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = :name AND pid <> pg_backend_pid()")  # fmt: skip
    admin.execute(terminate, {"name": name})
    down_at = utcnow()
    more_sends(redis_client, 3)  # the beat keeps sending while the database is down
    admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    up_at = utcnow()
    wait_for(lambda: {r.task_id for r in all_runs(schedules) if r.sent_at}
             >= {h["id"] for h in scheduled_headers(redis_client)
                 if datetime.fromisoformat(h["ewas_occurrence"]) < up_at}, timeout=15)  # fmt: skip
    more_sends(redis_client, 2)
    until = utcnow() - timedelta(seconds=1.5)
    stop_all(beats)
    rows = assert_exactly_once(schedules, redis_client, until)
    assert any(down_at < r.occurrence < up_at and r.sent_at for r in rows)
    logs = [b.log() for b in beats]
    assert any("database unavailable" in log for log in logs)
    assert all(log.count("database unavailable") <= 1 for log in logs)


def test_disabling_a_schedule_keeps_the_projection_complete(app: Flask, redis_client) -> None:
    every_second("one")
    second = every_second("two")
    store = get_store()
    service.sync_all()
    assert projection_state(store)["expected"] == 2
    service.set_enabled(db.session.get(ScheduledTask, second), False)
    db.session.commit()
    state = projection_state(store)
    assert state["complete"] and state["entries"] == state["expected"] == 1
