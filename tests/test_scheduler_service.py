"""Schedule management: validation, write-through to Redis, rebuild, run now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models import RunKind, ScheduledTask, ScheduleRun
from app.models.types import utcnow
from app.scheduler import service
from app.scheduler.projection import rebuild
from app.scheduler.store import get_store
from app.scheduler.timing import from_ms, to_ms
from tests.factories import HEALTH
from tests.scheduler_support import scheduled_headers


def crontab(**overrides):
    return {
        "name": "hourly",
        "task": HEALTH,
        "kind": "crontab",
        "crontab": "0 * * * *",
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"crontab": "0 0 31 2 *"}, "crontab"),
        ({"crontab": "R * * * *"}, "crontab"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"kwargs": "{not json"}, "kwargs"),
        ({"args": '{"a": 1}'}, "args"),
        ({"task": "no.such.task"}, "task"),
        ({"kwargs": {"unexpected": 1}}, "kwargs"),
        ({"kind": "weekly"}, "kind"),
        ({"kind": "interval", "interval_every": 0, "interval_unit": "minutes"}, "interval_every"),
        ({"kind": "one_time"}, "run_at"),
        ({"kind": "one_time", "run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"kind": "one_time", "run_at": "2020-01-01T00:00:00+00:00"}, "run_at"),
        ({"queue": "nowhere"}, "queue"),
        ({"chain": [{"task": "no.such.task"}]}, "chain"),
        ({"misfire_policy": "sometimes"}, "misfire_policy"),
    ],
)
def test_invalid_input_names_the_field_and_saves_nothing(
    app: Flask, redis_client: redis.Redis, overrides: dict, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.create_schedule(**crontab(**overrides))
    db.session.rollback()
    assert caught.value.fields[field]
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0
    assert not redis_client.keys("ewas:sched:*")


def test_duplicate_names_conflict(app: Flask) -> None:
    service.create_schedule(**crontab())
    db.session.commit()
    with pytest.raises(Conflict):
        service.create_schedule(**crontab())


def next_half_past(moment: datetime) -> datetime:
    half_past = moment.replace(minute=30, second=0, microsecond=0)
    return half_past if half_past > moment else half_past + timedelta(hours=1)


def test_writes_go_through_to_redis_after_commit(app: Flask) -> None:
    store = get_store()
    schedule = service.create_schedule(**crontab(timezone="Asia/Kolkata"))
    assert store.due_ms(schedule.id) is None  # nothing before the commit
    before = utcnow()
    db.session.commit()
    due = from_ms(store.due_ms(schedule.id))
    # Kolkata is UTC+05:30: its next top of the hour is the next half past in UTC.
    assert due in {next_half_past(before), next_half_past(utcnow())}

    service.update_schedule(schedule, kind="interval", interval_every=1, interval_unit="hours")
    db.session.commit()
    due = from_ms(store.due_ms(schedule.id))
    assert timedelta(minutes=59) < due - utcnow() <= timedelta(hours=1)

    service.set_enabled(schedule, False)
    db.session.commit()
    assert store.due_ms(schedule.id) is None  # no wake-ups for a disabled entry
    service.set_enabled(schedule, True)
    db.session.commit()
    assert from_ms(store.due_ms(schedule.id)) > utcnow()

    service.delete_schedule(schedule)
    db.session.commit()
    assert store.due_ms(schedule.id) is None and store.entries([schedule.id]) == [None]


def test_rolled_back_changes_never_reach_redis(app: Flask) -> None:
    schedule = service.create_schedule(**crontab())
    schedule_id = schedule.id
    db.session.rollback()
    db.session.commit()
    assert get_store().due_ms(schedule_id) is None


def test_a_kwargs_edit_keeps_the_due_time(app: Flask) -> None:
    store = get_store()
    schedule = service.create_schedule(**crontab(kind="interval", crontab=None, interval_every=7,
                                                 interval_unit="minutes"))  # fmt: skip
    db.session.commit()
    before = store.due_ms(schedule.id)
    service.update_schedule(schedule, kwargs={})
    db.session.commit()
    assert store.due_ms(schedule.id) == before


def test_rebuild_after_flushdb_loses_no_schedule(app: Flask, redis_client: redis.Redis) -> None:
    store = get_store()
    ids = []
    for n in range(5):
        s = service.create_schedule(**crontab(name=f"s{n}", crontab=f"{n} * * * *"))
        ids.append(s.id)
    off = service.create_schedule(**crontab(name="off", enabled=False))
    db.session.commit()
    dues = {i: store.due_ms(i) for i in ids}
    assert rebuild(store) == 0  # in step: nothing rewritten
    redis_client.flushdb()
    assert rebuild(store) == 5
    assert {i: store.due_ms(i) for i in ids} == dues
    assert store.due_ms(off.id) is None


def test_two_rebuilds_at_once_both_finish_and_a_flush_undoes_one(
    app: Flask, redis_client: redis.Redis
) -> None:
    """Two beats starting together rebuild side by side: neither may starve the other (a beat
    whose rebuild never finishes crashed at start); a flush during a rebuild still voids it."""
    store = get_store()
    first, second = store.start_rebuild(), store.start_rebuild()
    assert store.mark_rebuilt(second, [], 0)
    assert store.mark_rebuilt(first, [], 0)
    assert not store.mark_rebuilt(first, [], 0)  # each note marks once
    flushed = store.start_rebuild()
    redis_client.flushdb()
    assert not store.mark_rebuilt(flushed, [], 0)


def test_rebuild_resumes_after_the_last_recorded_occurrence(app: Flask, redis_client) -> None:
    store = get_store()
    schedule = service.create_schedule(**crontab(crontab="*/10 * * * *"))
    db.session.commit()
    last = (utcnow() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    schedule.scheduled_from = last - timedelta(days=1)
    db.session.add(ScheduleRun(schedule_id=schedule.id, occurrence=last, kind=RunKind.SCHEDULED))
    db.session.commit()
    redis_client.flushdb()
    rebuild(store)
    # The first occurrence after the last run: in the past, so beat's misfire policy applies.
    assert from_ms(store.due_ms(schedule.id)) == last + timedelta(minutes=10)
    assert store.claimed(schedule.id) == to_ms(last)


def test_run_now_sends_with_headers_and_leaves_the_due_time(app, redis_client) -> None:
    store = get_store()
    schedule = service.create_schedule(
        **crontab(
            task="data_pipeline.tasks.run_full_pipeline",
            kwargs={"source": "idmc"},
            max_retries=2,
            retry_backoff_seconds=1.5,
        )
    )
    schedule_task = "data_pipeline.tasks.run_full_pipeline"
    db.session.commit()
    due = store.due_ms(schedule.id)
    run = service.run_now(schedule)
    db.session.commit()
    assert store.due_ms(schedule.id) == due
    assert run.kind == RunKind.MANUAL and run.sent_at is not None and run.error is None
    [headers] = scheduled_headers(redis_client)
    assert headers["id"] == run.task_id and headers["task"] == schedule_task
    assert headers["ewas_schedule_id"] == schedule.id
    assert headers["ewas_run_kind"] == "manual"
    assert datetime.fromisoformat(headers["ewas_occurrence"]).tzinfo == UTC
    assert headers["ewas_retry_policy"] == {"max_retries": 2, "backoff_seconds": 1.5}
    assert schedule.total_run_count == 1
