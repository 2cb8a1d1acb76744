"""Overlap policy (allow, skip, queue_one) and pause after failures.

With real processes: a beat, a worker running a slow task and a recorder (it keeps the pipeline
runs beat reads to know whether the previous run still runs). What is asserted exactly is what
must never happen: two runs of a skip or queue_one schedule running at once, an occurrence
recorded or sent twice, more than one occurrence waiting. Then beat driven tick by tick over
runs written directly (the same rules, without waiting for processes), pause after 3 failed runs
with beat down, and the bad inputs of the form and the API.
"""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    Alert,
    PipelineRun,
    Role,
    RunKind,
    RunStatus,
    ScheduledTask,
    ScheduleRun,
    TaskExecution,
)
from app.models.types import utcnow
from app.scheduler import service
from app.scheduler.beat import RedisScheduler
from app.scheduler.projection import entry_data
from app.scheduler.sending import send
from app.scheduler.store import get_store
from app.scheduler.timing import from_ms, to_ms
from tests import (
    factories,
    sample_tasks,  # noqa: F401  (registers tests.sleep and tests.fail)
)
from tests.conftest import Webhook
from tests.factories import HEALTH
from tests.scheduler_support import scheduled_headers
from tests.support import wait_for


def runs_of(schedule: ScheduledTask) -> list[ScheduleRun]:
    db.session.expire_all()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
    return list(db.session.scalars(query.order_by(ScheduleRun.occurrence)))


def pipeline_runs(schedule: ScheduledTask) -> list[PipelineRun]:
    db.session.expire_all()
    query = select(PipelineRun).where(PipelineRun.schedule_id == schedule.id)
    return list(db.session.scalars(query.order_by(PipelineRun.started_at)))


def finished_runs(schedule: ScheduledTask) -> list[PipelineRun]:
    return [r for r in pipeline_runs(schedule) if r.status == RunStatus.SUCCESS]


def assert_never_overlapped(schedule: ScheduledTask) -> None:
    """Each run of the schedule started after the previous one finished."""
    done = [r for r in pipeline_runs(schedule) if r.started_at is not None]
    for earlier, later in pairwise(done):
        assert earlier.finished_at is not None, (earlier, later)
        assert later.started_at >= earlier.finished_at, (earlier, later)


def assert_each_occurrence_once(schedule: ScheduledTask) -> None:
    """One run row per occurrence, and one execution per sent occurrence."""
    rows = runs_of(schedule)
    counts = Counter(r.occurrence for r in rows)
    assert max(counts.values()) == 1, counts
    executions = Counter(
        db.session.scalars(
            select(TaskExecution.schedule_occurrence).where(
                TaskExecution.schedule_id == schedule.id
            )
        )
    )
    assert executions and max(executions.values()) == 1, executions
    sent = {r.occurrence for r in rows if r.kind == RunKind.SCHEDULED}
    skipped = {r.occurrence for r in rows if r.kind == RunKind.SKIPPED}
    assert not sent & skipped


def slow_schedule(policy: str, every: int, seconds: float) -> ScheduledTask:
    created = service.create_schedule(
        name=f"slow-{policy}", task="tests.sleep", args=[seconds], kind="interval",
        interval_every=every, interval_unit="seconds", overlap_policy=policy,
    )  # fmt: skip
    db.session.commit()
    return created


def test_skip_never_overlaps_and_records_the_skipped_occurrences(
    app: Flask, client: FlaskClient, start_worker, start_recorder, start_beat, login_as
) -> None:
    start_worker(concurrency=2)  # room for two runs at once: only the policy prevents them
    start_recorder()
    schedule = slow_schedule("skip", every=1, seconds=2.5)
    beat = start_beat()
    wait_for(lambda: len(finished_runs(schedule)) >= 3, timeout=120, interval=0.5)
    beat.stop()
    rows = runs_of(schedule)
    skipped = [r for r in rows if r.kind == RunKind.SKIPPED]
    assert len(skipped) >= 2
    assert all(r.task_id is None and r.sent_at is None for r in skipped)
    assert all("still running" in (r.reason or "") for r in skipped)
    assert "beat: skipped slow-skip" in beat.log()
    assert_never_overlapped(schedule)
    assert_each_occurrence_once(schedule)
    # The history shows them, labelled.
    login_as(client, Role.VIEWER)
    page = client.get(f"/tasks/scheduled/{schedule.id}/").text
    assert "skipped (previous run still running)" in page
    assert "Skipped: the previous run was still running." in page


def test_queue_one_sends_the_waiting_occurrence_when_the_run_ends_across_a_beat_restart(
    app: Flask, redis_client: redis.Redis, start_worker, start_recorder, start_beat
) -> None:
    start_worker(concurrency=2)
    start_recorder()
    schedule = slow_schedule("queue_one", every=2, seconds=5)
    store = get_store()
    beat = start_beat()
    # One occurrence waits while the first run runs; the beat holding it is stopped.
    wait_for(lambda: store.waiting(), timeout=90, interval=0.2)
    [(_raw, waiting)] = store.waiting().values()
    assert len(store.waiting()) == 1
    beat.signal(signal.SIGTERM)
    beat.process.wait(20)
    assert store.waiting(), "a stopped beat keeps the waiting occurrence in Redis"
    other = start_beat()  # the next leader sends it once the run ended
    wanted = waiting["occurrence"]

    def waited_one_sent() -> ScheduleRun | None:
        return next(
            (r for r in runs_of(schedule) if to_ms(r.occurrence) == wanted and r.sent_at), None
        )

    sent = wait_for(waited_one_sent, timeout=90, interval=0.5)
    assert sent.kind == RunKind.SCHEDULED and sent.task_id == waiting["task_id"]
    # It waited: sent well after its due time, once the first run had finished.
    assert (sent.sent_at - sent.occurrence).total_seconds() >= 1
    wait_for(lambda: len(finished_runs(schedule)) >= 3, timeout=120, interval=0.5)
    other.stop()
    rows = runs_of(schedule)
    skipped = [r for r in rows if r.kind == RunKind.SKIPPED]
    assert skipped and all("already waiting" in (r.reason or "") for r in skipped)
    assert_never_overlapped(schedule)
    assert_each_occurrence_once(schedule)
    first = finished_runs(schedule)[0]
    assert sent.sent_at >= first.finished_at


# -- beat tick by tick, over runs written directly --------------------------------------------


def beat(app: Flask) -> RedisScheduler:
    return RedisScheduler(app.extensions["celery"])


def every_second(policy: str) -> ScheduledTask:
    created = service.create_schedule(
        name=f"tick-{policy}", task=HEALTH, kind="interval", interval_every=1,
        interval_unit="seconds", overlap_policy=policy,
    )  # fmt: skip
    db.session.commit()
    return created


def running_run(schedule: ScheduledTask, status: RunStatus = RunStatus.RUNNING) -> PipelineRun:
    """A pipeline run of the schedule, as the recorder keeps it."""
    run = factories.run(task_name=HEALTH, schedule_id=schedule.id, run_kind="scheduled",
                        status=status)  # fmt: skip
    db.session.commit()
    return run


def tick_until(scheduler: RedisScheduler, done: Callable[[], Any], timeout: float = 20) -> Any:
    def ticked() -> Any:
        scheduler.tick()
        return done()

    return wait_for(ticked, timeout=timeout, interval=0.1)


def sent_for(redis_client: redis.Redis, schedule: ScheduledTask) -> list[dict]:
    return [h for h in scheduled_headers(redis_client) if h["ewas_schedule_id"] == schedule.id]


def test_skip_and_allow_tick_by_tick(app: Flask, redis_client: redis.Redis) -> None:
    skip, allow = every_second("skip"), every_second("allow")
    for schedule in (skip, allow):
        running_run(schedule)
    scheduler = beat(app)
    tick_until(scheduler, lambda: len(sent_for(redis_client, allow)) >= 2)
    tick_until(scheduler, lambda: len([r for r in runs_of(skip) if r.kind == "skipped"]) >= 2)
    assert sent_for(redis_client, skip) == []
    assert all(r.kind == RunKind.SCHEDULED for r in runs_of(allow))
    # The run ends: the next occurrence is sent.
    db.session.execute(
        PipelineRun.__table__.update()
        .where(PipelineRun.schedule_id == skip.id)
        .values(status=RunStatus.SUCCESS, finished_at=utcnow())
    )
    db.session.commit()
    tick_until(scheduler, lambda: sent_for(redis_client, skip))
    # ... and that send counts as running until the recorder tracks it: nothing else is sent.
    before = len(sent_for(redis_client, skip))
    tick_until(scheduler, lambda: runs_of(skip)[-1].kind == RunKind.SKIPPED)
    assert len(sent_for(redis_client, skip)) == before
    scheduler.close()


def test_queue_one_tick_by_tick(app: Flask, redis_client: redis.Redis) -> None:
    schedule = every_second("queue_one")
    previous = running_run(schedule)
    store = get_store()
    scheduler = beat(app)
    tick_until(scheduler, lambda: store.waiting())
    tick_until(scheduler, lambda: any(r.kind == RunKind.SKIPPED for r in runs_of(schedule)))
    [(_raw, waiting)] = store.waiting().values()
    assert sent_for(redis_client, schedule) == []
    [skipped, *_] = [r for r in runs_of(schedule) if r.kind == RunKind.SKIPPED]
    assert "already waiting" in skipped.reason and to_ms(skipped.occurrence) > waiting["occurrence"]
    previous.status, previous.finished_at = RunStatus.SUCCESS, utcnow()
    db.session.commit()
    [headers] = tick_until(scheduler, lambda: sent_for(redis_client, schedule))
    assert headers["id"] == waiting["task_id"]
    assert headers["ewas_occurrence"] == from_ms(waiting["occurrence"]).isoformat()
    assert not store.waiting() and not store.inflight()
    scheduler.close()


def test_a_waiting_occurrence_of_a_disabled_schedule_is_recorded_skipped(
    app: Flask, redis_client: redis.Redis
) -> None:
    schedule = every_second("queue_one")
    running_run(schedule)
    store = get_store()
    scheduler = beat(app)
    tick_until(scheduler, lambda: store.waiting())
    [(_raw, waiting)] = store.waiting().values()
    service.set_enabled(schedule, False)
    db.session.commit()
    tick_until(scheduler, lambda: not store.waiting())
    [row] = [r for r in runs_of(schedule) if to_ms(r.occurrence) == waiting["occurrence"]]
    assert row.kind == RunKind.SKIPPED and "disabled" in row.reason
    assert sent_for(redis_client, schedule) == []
    scheduler.close()


def test_the_watch_does_not_call_a_held_back_schedule_late(app: Flask) -> None:
    from app.watch.facts import watch
    from app.watch.states import WatchState

    schedule = service.create_schedule(
        name="held", task=HEALTH, kind="interval", interval_every=1, interval_unit="seconds",
        start_at=utcnow() - timedelta(minutes=2), grace_seconds=1, overlap_policy="queue_one",
    )  # fmt: skip
    db.session.commit()
    schedule.scheduled_from = utcnow() - timedelta(minutes=1)  # as if timed back then
    db.session.commit()
    run = ScheduleRun(
        schedule_id=schedule.id, occurrence=utcnow() - timedelta(seconds=30),
        kind=RunKind.SCHEDULED, task_id=str(uuid.uuid4()), sent_at=utcnow(),
    )  # fmt: skip
    db.session.add(run)
    factories.run(root_task_id=run.task_id, task_name=None, schedule_id=schedule.id,
                  run_kind="scheduled", started_at=utcnow() - timedelta(seconds=29))  # fmt: skip
    db.session.commit()
    [found] = watch([schedule], utcnow())
    assert found.assessment.state == WatchState.ON_TIME
    schedule.overlap_policy = "allow"
    db.session.commit()
    [found] = watch([schedule], utcnow())
    assert found.assessment.state == WatchState.LATE


# -- pause after failures ---------------------------------------------------------------------


def send_occurrence(app: Flask, schedule: ScheduledTask, kind: str = "scheduled") -> str:
    """Send one occurrence as beat does (beat itself is down)."""
    task_id = str(uuid.uuid4())
    send(app.extensions["celery"], entry_data(schedule), utcnow(), kind, task_id)
    return task_id


def failed(task_id: str) -> bool:
    db.session.expire_all()
    run = db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == task_id))
    return run is not None and run.status == RunStatus.FAILURE


def paused_state(schedule: ScheduledTask) -> tuple[bool, int | None]:
    db.session.expire_all()
    fresh = db.session.get(ScheduledTask, schedule.id)
    return fresh.enabled, fresh.paused_after_failures


def test_pause_after_three_failed_runs_with_beat_down(
    app: Flask, client: FlaskClient, login_as, start_worker, start_recorder, webhook: Webhook
) -> None:
    start_worker(concurrency=1, ALERT_WEBHOOK_URL=webhook.url)  # it sends the notifications
    start_recorder(ALERT_WEBHOOK_URL=webhook.url)
    schedule = service.create_schedule(
        name="fragile", task="tests.fail", args=["upstream down"], kind="interval",
        interval_every=1, interval_unit="hours", pause_after_failures=3,
    )  # fmt: skip
    db.session.commit()
    store = get_store()
    assert store.due_ms(schedule.id) is not None
    for kind in ("scheduled", "scheduled", "manual"):  # a manual run does not count
        task_id = send_occurrence(app, schedule, kind)
        wait_for(lambda task_id=task_id: failed(task_id), timeout=60)
    assert paused_state(schedule) == (True, None)
    third = send_occurrence(app, schedule)
    wait_for(lambda: failed(third), timeout=60)
    wait_for(lambda: paused_state(schedule) == (False, 3), timeout=30)
    # It leaves the projection (beat will not send it) right after the recorder's commit.
    wait_for(lambda: store.due_ms(schedule.id) is None, timeout=10)
    alerts = list(db.session.scalars(select(Alert).where(Alert.kind == "schedule_paused")))
    assert len(alerts) == 1 and "fragile" in alerts[0].title and "3" in alerts[0].title
    wait_for(lambda: "schedule_paused" in [h["kind"] for h in webhook.received], timeout=30)
    # Its page says why until an operator enables it again (the existing enable action).
    csrf = login_as(client, Role.OPERATOR)
    detail = f"/tasks/scheduled/{schedule.id}/"
    assert "Paused after 3 consecutive failures" in client.get(detail).text
    assert "paused after 3 consecutive failures" in client.get("/tasks/scheduled/").text
    api = client.get(f"/tasks/api/scheduled/{schedule.id}/").json
    assert api["paused_after_failures"] == 3 and api["enabled"] is False
    response = client.post(f"{detail}toggle/", data={"enabled": "1", "csrf_token": csrf})
    assert response.status_code == 303
    assert paused_state(schedule) == (True, None)
    assert "Paused after" not in client.get(detail).text
    assert store.due_ms(schedule.id) is not None
    # Resumed: it gets three more tries (the failures before count no more).
    again = send_occurrence(app, schedule)
    wait_for(lambda: failed(again), timeout=60)
    assert paused_state(schedule) == (True, None)
    paused_alerts = select(func.count(Alert.id)).where(Alert.kind == "schedule_paused")
    assert db.session.scalar(paused_alerts) == 1


# -- bad inputs -------------------------------------------------------------------------------


SCHEDULE = {"name": "hourly check", "task": HEALTH, "kind": "interval", "interval_every": 1,
            "interval_unit": "hours"}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("overlap_policy", "never"),
        ("overlap_policy", "SKIP"),
        ("overlap_policy", ""),
        ("overlap_policy", 1),
        ("overlap_policy", None),
        ("overlap_policy", "skip\x00"),
        ("pause_after_failures", 0),
        ("pause_after_failures", -1),
        ("pause_after_failures", 1001),
        ("pause_after_failures", 10**30),
        ("pause_after_failures", "3"),
        ("pause_after_failures", "١٢"),
        ("pause_after_failures", 2.5),
        ("pause_after_failures", True),
        ("pause_after_failures", [3]),
    ],
)
def test_the_api_refuses_bad_values(
    client: FlaskClient, api_operator: dict, field: str, value: Any
) -> None:
    response = client.post("/tasks/api/scheduled/", json={**SCHEDULE, field: value},
                           headers=api_operator)  # fmt: skip
    assert response.status_code == 422, response.json
    assert field in str(response.json)
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0


def test_the_api_takes_and_returns_both_settings(client: FlaskClient, api_operator: dict) -> None:
    created = client.post(
        "/tasks/api/scheduled/",
        json={**SCHEDULE, "overlap_policy": "queue_one", "pause_after_failures": 1000},
        headers=api_operator,
    )
    assert created.status_code == 201, created.json
    assert created.json["overlap_policy"] == "queue_one"
    assert created.json["pause_after_failures"] == 1000
    url = f"/tasks/api/scheduled/{created.json['id']}/"
    patched = client.patch(url, json={"pause_after_failures": None, "overlap_policy": "skip"},
                           headers=api_operator)  # fmt: skip
    assert patched.status_code == 200
    assert patched.json["pause_after_failures"] is None and patched.json["overlap_policy"] == "skip"
    refused = client.patch(url, json={"pause_after_failures": 0}, headers=api_operator)
    assert refused.status_code == 422
    db.session.expire_all()
    assert db.session.get(ScheduledTask, created.json["id"]).pause_after_failures is None
    spec = client.get("/tasks/api/openapi.json", headers=api_operator).json
    fields = spec["components"]["schemas"]["ScheduleInput"]["properties"]
    assert fields["overlap_policy"]["enum"] == ["allow", "skip", "queue_one"]
    pause = fields["pause_after_failures"]
    assert (pause["minimum"], pause["maximum"]) == (1, 1000)


def form_data(csrf: str, **overrides: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf, "name": "nightly", "task": HEALTH, "kind": "crontab",
        "crontab": "0 2 * * *", "interval_unit": "minutes", "timezone": "UTC", "args": "[]",
        "kwargs": "{}", "chain": "[]", "misfire_policy": "run_once", "enabled": "y",
        "overlap_policy": "allow", "pause_after_failures": "",
    }  # fmt: skip
    return {**data, **overrides}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("overlap_policy", "never"),
        ("overlap_policy", "\x00"),
        ("pause_after_failures", "0"),
        ("pause_after_failures", "-1"),
        ("pause_after_failures", "1001"),
        ("pause_after_failures", "9" * 5000),
        ("pause_after_failures", "١٢"),
        ("pause_after_failures", "²"),
        ("pause_after_failures", "\uff11\uff12"),
        ("pause_after_failures", "three"),
        ("pause_after_failures", "2.5"),
        ("pause_after_failures", "3\x00"),
    ],
)
def test_the_form_refuses_bad_values_beside_the_field(
    client: FlaskClient, login_as, field: str, value: str
) -> None:
    csrf = login_as(client, Role.OPERATOR)
    response = client.post("/tasks/scheduled/new/", data=form_data(csrf, **{field: value}))
    assert response.status_code == 422
    assert f'id="{field}-errors"' in response.text
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0


def test_the_form_saves_both_settings_and_the_page_shows_them(
    client: FlaskClient, login_as
) -> None:
    csrf = login_as(client, Role.OPERATOR)
    data = form_data(csrf, overlap_policy="queue_one", pause_after_failures=" 5 ")
    response = client.post("/tasks/scheduled/new/", data=data)
    assert response.status_code == 303
    saved = db.session.scalar(select(ScheduledTask))
    assert (saved.overlap_policy, saved.pause_after_failures) == ("queue_one", 5)
    page = client.get(response.headers["Location"]).text
    assert "run it when the previous run ends (at most one waits)" in page
    assert "after 5 failed runs in a row" in page
    edit = client.get(f"/tasks/scheduled/{saved.id}/edit/").text
    assert '<option selected value="queue_one">' in edit and 'value="5"' in edit


def test_a_send_whose_start_was_recorded_before_its_publish_is_still_running(app: Flask) -> None:
    """The worker's start event can reach the recorder before the sender's publish event, which
    alone carries the schedule id that makes the run: the execution is then tracked without a
    run. That send still runs; a new leader that took it for ended sent the next occurrence
    alongside it (two runs of a queue_one schedule at once, seen in CI)."""
    from app.scheduler.overlap import running_run as previous_running

    schedule = every_second("queue_one")
    running_run(schedule, status=RunStatus.SUCCESS)  # the run before, ended
    task_id = str(uuid.uuid4())
    db.session.add(
        ScheduleRun(schedule_id=schedule.id, occurrence=utcnow(), kind=RunKind.SCHEDULED,
                    task_id=task_id, sent_at=utcnow())
    )  # fmt: skip
    factories.execution(task_id=task_id, task_name=HEALTH, status="started", started_at=utcnow())
    db.session.commit()
    assert previous_running(schedule.id) == task_id
    db.session.execute(
        TaskExecution.__table__.update()
        .where(TaskExecution.task_id == task_id)
        .values(status="success", completed_at=utcnow())
    )
    db.session.commit()
    assert previous_running(schedule.id) == task_id  # its run (a chain?) is not recorded yet
    factories.run(
        root_task_id=task_id, task_name=HEALTH, schedule_id=schedule.id, status=RunStatus.SUCCESS,
        created_at=utcnow() - timedelta(seconds=1), finished_at=utcnow(),
    )  # fmt: skip
    db.session.commit()
    assert previous_running(schedule.id) is None  # its run is recorded, and ended
