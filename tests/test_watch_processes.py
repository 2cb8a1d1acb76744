"""The schedule watch with real processes: a recorder running the watch, beat, a worker.

Beat is stopped past a schedule's grace (late, one alert), started again (caught up per the
misfire policy, on time, a resolved note); a run longer than its maximum (overrunning); a
failed run (failing).
"""

from __future__ import annotations

from collections import Counter

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, Role, RunKind, ScheduledTask, ScheduleRun, ScheduleWatch
from app.scheduler import service
from tests import sample_tasks  # noqa: F401  (registers tests.sleep and tests.fail)
from tests.conftest import Webhook
from tests.factories import HEALTH
from tests.support import bearer, wait_for

WATCH_ENV = {"WATCH_INTERVAL": "0.5"}


def state_of(schedule: ScheduledTask) -> str | None:
    db.session.expire_all()
    row = db.session.get(ScheduleWatch, schedule.id)
    return row.state if row else None


def kinds(webhook: Webhook) -> list[str]:
    return [hook["kind"] for hook in webhook.received]


def test_beat_down_past_the_grace_is_late_then_caught_up_and_resolved(
    app: Flask,
    client: FlaskClient,
    token_for,
    start_worker,
    start_recorder,
    start_beat,
    webhook: Webhook,
) -> None:
    env = {**WATCH_ENV, "ALERT_WEBHOOK_URL": webhook.url, "SCHEDULER_MISFIRE_GRACE": "1"}
    start_worker(concurrency=1)
    start_recorder(**env)
    schedule = service.create_schedule(
        name="every-2s", task=HEALTH, kind="interval", interval_every=2, interval_unit="seconds",
        grace_seconds=4,
    )  # fmt: skip
    db.session.commit()
    beat = start_beat(**env)
    wait_for(lambda: state_of(schedule) == "on_time", timeout=60)
    beat.stop()
    wait_for(lambda: state_of(schedule) == "late", timeout=30)
    wait_for(lambda: "schedule_late" in kinds(webhook), timeout=20)
    viewer = bearer(token_for(Role.VIEWER))
    listed = client.get("/tasks/api/scheduled/", headers=viewer).json["items"][0]
    assert listed["watch"]["state"] == "late" and listed["watch"]["cause"] == "not_sent"
    health = client.get("/tasks/api/health/", headers=viewer).json["checks"]
    assert health["beat"]["late_schedules"] == ["every-2s"] and health["watch"]["ok"]

    start_beat(**env)
    wait_for(lambda: state_of(schedule) == "on_time", timeout=60)
    wait_for(lambda: "schedule_resolved" in kinds(webhook), timeout=20)
    runs = list(
        db.session.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id))
    )
    counted = Counter(run.kind for run in runs)
    assert counted[RunKind.CATCHUP] == 1 and counted[RunKind.MISSED] >= 1  # run once, then resume
    assert len({run.occurrence for run in runs}) == len(runs)  # nothing sent twice
    assert Counter(kinds(webhook)) == {"schedule_late": 1, "schedule_resolved": 1}
    late = db.session.scalar(select(Alert).where(Alert.kind == "schedule_late"))
    assert "every-2s" in late.title and late.notified_at is not None


def test_overrunning_and_failing_runs(
    app: Flask, client: FlaskClient, start_worker, start_recorder, webhook: Webhook
) -> None:
    env = {**WATCH_ENV, "ALERT_WEBHOOK_URL": webhook.url}
    start_worker(concurrency=2)
    start_recorder(**env)
    slow = service.create_schedule(
        name="slow", task="tests.sleep", args=[6], kind="crontab", crontab="0 6 * * *",
        max_duration_seconds=1,
    )  # fmt: skip
    failing = service.create_schedule(
        name="failing", task="tests.fail", args=["helix unreachable"], kind="crontab",
        crontab="0 6 * * *",
    )  # fmt: skip
    for schedule in (slow, failing):  # timed now: nothing is due before tomorrow's 06:00
        service.run_now(schedule)
    db.session.commit()
    wait_for(lambda: state_of(slow) == "overrunning", timeout=60)
    wait_for(lambda: state_of(failing) == "failing", timeout=60)
    wait_for(lambda: {"schedule_overrunning", "schedule_failing"} <= set(kinds(webhook)), 20)
    wait_for(lambda: state_of(slow) == "on_time", timeout=60)  # the run ended: resolved
    wait_for(lambda: "schedule_resolved" in kinds(webhook), timeout=20)
    assert Counter(kinds(webhook)) == {
        "schedule_overrunning": 1,
        "schedule_failing": 1,
        "schedule_resolved": 1,
    }
    failed = db.session.scalar(select(Alert).where(Alert.kind == "schedule_failing"))
    assert "helix unreachable" in failed.message
