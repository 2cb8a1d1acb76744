"""The schedule watch in one process: grace and maximum edits, states, alerts, health, metrics.

Real processes (beat stopped and restarted, an overrunning run) are in test_watch_processes.py.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.extensions import own_redis as own_redis_client
from app.models import (
    Alert,
    Role,
    RunKind,
    ScheduledTask,
    ScheduleRun,
    ScheduleWatch,
    TaskExecution,
    TaskStatus,
)
from app.models.types import utcnow
from app.scheduler import service
from app.watch.states import MAX_SECONDS
from app.watch.watcher import HEARTBEAT_KEY, ScheduleWatcher, check
from tests import factories
from tests.conftest import Webhook
from tests.factories import HEALTH
from tests.support import bearer, sample
from tests.test_web_scheduled import NEW, field_errors, form

API = "/tasks/api/scheduled/"
BAD_SECONDS = ["-5", "0", str(MAX_SECONDS + 1), "99999999999999999999", "abc", "1.5", "²"]


@pytest.fixture
def operator(client: FlaskClient, login_as) -> tuple[FlaskClient, str]:
    return client, login_as(client, Role.OPERATOR)


def daily(name: str = "idmc-06", task: str = HEALTH, **values: object) -> ScheduledTask:
    """A daily 06:00 UTC schedule, timed two days ago: yesterday's 06:00 is long due."""
    created = factories.schedule(name=name, task=task, crontab="0 6 * * *", **values)
    created.scheduled_from = created.created_at = utcnow() - timedelta(days=2)
    db.session.commit()
    return created


def sent(schedule: ScheduledTask, status: TaskStatus, error: str | None = None) -> ScheduleRun:
    """The schedule's latest due occurrence, sent now and tracked with ``status``."""
    occurrence = utcnow().replace(hour=6, minute=0, second=0, microsecond=0)
    if occurrence > utcnow():
        occurrence -= timedelta(days=1)
    task_id = str(uuid.uuid4())
    run = ScheduleRun(
        schedule_id=schedule.id, occurrence=occurrence, kind=RunKind.CATCHUP, task_id=task_id,
        sent_at=utcnow(),
    )  # fmt: skip
    db.session.add(run)
    now = utcnow()
    factories.execution(
        task_id=task_id, task_name=schedule.task, status=status, created_at=now,
        started_at=now, completed_at=None if status == TaskStatus.STARTED else now,
        error_message=error,
    )  # fmt: skip
    db.session.commit()
    return run


def alerts() -> list[Alert]:
    db.session.expire_all()
    return list(db.session.scalars(select(Alert).order_by(Alert.id)))


# --- grace and maximum duration through the form and the API -----------------------------


def test_grace_and_maximum_are_saved_from_the_form(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    response = client.post(NEW, data=form(csrf, grace_seconds="90", max_duration_seconds="3600"))
    assert response.status_code == 303, response.text
    saved = db.session.scalar(select(ScheduledTask))
    assert (saved.grace_seconds, saved.max_duration_seconds) == (90, 3600)
    edit = client.get(f"/tasks/scheduled/{saved.id}/edit/").text
    assert 'name="grace_seconds"' in edit and 'value="90"' in edit
    cleared = form(csrf, grace_seconds="", max_duration_seconds="")
    response = client.post(f"/tasks/scheduled/{saved.id}/edit/", data=cleared)
    assert response.status_code == 303
    db.session.expire_all()
    assert (saved.grace_seconds, saved.max_duration_seconds) == (None, None)
    detail = client.get(f"/tasks/scheduled/{saved.id}/").text
    assert "default: 10% of the time between two runs" in detail and "no limit" in detail


@pytest.mark.parametrize("field", ["grace_seconds", "max_duration_seconds"])
@pytest.mark.parametrize("value", BAD_SECONDS)
def test_bad_grace_or_maximum_is_refused_beside_its_field(
    operator: tuple[FlaskClient, str], field: str, value: str
) -> None:
    client, csrf = operator
    response = client.post(NEW, data=form(csrf, **{field: value}))
    assert response.status_code == 422
    assert field_errors(response.text, field), response.text
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0


def test_grace_and_maximum_through_the_api(client: FlaskClient, token_for, app: Flask) -> None:
    headers = bearer(token_for(Role.OPERATOR))
    body = {"name": "api-watch", "task": HEALTH, "kind": "crontab", "crontab": "0 6 * * *"}
    created = client.post(API, json={**body, "grace_seconds": 120}, headers=headers)
    assert created.status_code == 201, created.json
    assert created.json["grace_seconds"] == 120 and created.json["max_duration_seconds"] is None
    url = f"{API}{created.json['id']}/"
    for field in ("grace_seconds", "max_duration_seconds"):
        for bad in (-5, 0, MAX_SECONDS + 1, 10**40, "60", 1.5, True, [1], {"a": 1}):
            response = client.patch(url, json={field: bad}, headers=headers)
            assert response.status_code == 422, (field, bad, response.json)
            assert field in response.json["error"]["fields"], response.json
    patched = client.patch(url, json={"max_duration_seconds": 3600}, headers=headers)
    assert patched.status_code == 200 and patched.json["max_duration_seconds"] == 3600
    cleared = client.patch(url, json={"grace_seconds": None}, headers=headers)
    assert cleared.status_code == 200 and cleared.json["grace_seconds"] is None
    one = client.get(url, headers=headers).json
    assert one["watch"]["state"] == "never_run" and one["watch"]["grace_seconds"] == 1800
    listed = client.get(API, headers=headers).json["items"][0]
    assert listed["watch"]["state"] == "never_run"


# --- states and alerts -------------------------------------------------------------------


def test_late_alerts_once_then_resolves_when_sent(app: Flask, webhook: Webhook) -> None:
    app.config.update(ALERT_WEBHOOK_URL=webhook.url)
    schedule = daily(grace_seconds=60)
    watcher = ScheduleWatcher(app, redis.Redis.from_url(app.config["REDIS_URL"]), interval=1)
    [late] = watcher.tick()
    assert watcher.tick() == [] and watcher.tick() == []  # never repeated every check
    alert = db.session.get(Alert, late)
    assert alert.kind == "schedule_late" and alert.severity == "error"
    assert "idmc-06" in alert.title and "nothing sent" in alert.message
    assert [hook["kind"] for hook in webhook.received] == ["schedule_late"]
    assert db.session.get(ScheduleWatch, schedule.id).state == "late"
    assert alert.notified_at is not None  # notified by the watch itself, no worker needed
    sent(schedule, TaskStatus.SUCCESS)
    [resolved] = watcher.tick()
    assert db.session.get(Alert, resolved).kind == "schedule_resolved"
    assert "is on time again" in db.session.get(Alert, resolved).title
    assert [hook["kind"] for hook in webhook.received] == ["schedule_late", "schedule_resolved"]
    assert watcher.tick() == []
    assert float(redis.Redis.from_url(app.config["REDIS_URL"]).get(HEARTBEAT_KEY)) > 0


def test_a_critical_schedule_raises_critical_alerts(app: Flask) -> None:
    daily(name="idmc", task="data_pipeline.tasks.run_full_pipeline", grace_seconds=60)
    daily(name="chained", chain=[{"task": "data_pipeline.tasks.retrieve_source", "args": [1, 1]}])
    check()
    db.session.commit()
    assert sorted((a.title.split(" ")[1], a.severity) for a in alerts()) == [
        ("chained", "critical"),
        ("idmc", "critical"),
    ]


def test_failing_and_overrunning_runs(app: Flask) -> None:
    failing = daily(name="failing")
    sent(failing, TaskStatus.FAILURE, "ConnectionError: helix unreachable")
    slow = daily(name="slow", max_duration_seconds=1)
    run = sent(slow, TaskStatus.STARTED)
    db.session.execute(
        TaskExecution.__table__.update()
        .where(TaskExecution.task_id == run.task_id)
        .values(started_at=utcnow() - timedelta(seconds=5))
    )
    db.session.commit()
    check()
    db.session.commit()
    states = {row.schedule_id: row.state for row in db.session.scalars(select(ScheduleWatch))}
    assert states == {failing.id: "failing", slow.id: "overrunning"}
    kinds = sorted(a.kind for a in alerts())
    assert kinds == ["schedule_failing", "schedule_overrunning"]
    failed = next(a for a in alerts() if a.kind == "schedule_failing")
    assert "helix unreachable" in failed.message
    check()
    db.session.commit()
    assert len(alerts()) == 2


def test_a_deleted_or_disabled_schedule_is_not_alerted(app: Flask) -> None:
    gone = daily(name="gone", grace_seconds=60)
    quiet = daily(name="quiet", grace_seconds=60)
    service.set_enabled(quiet, False)
    db.session.commit()
    service.delete_schedule(gone)
    db.session.commit()
    assert check() == []
    db.session.commit()
    assert [row.state for row in db.session.scalars(select(ScheduleWatch))] == ["disabled"]


# --- seen everywhere: dashboard, health, metrics ------------------------------------------


def test_dashboard_counts_schedules_on_time_and_lists_the_late_first(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    fine = daily(name="a-fine")
    sent(fine, TaskStatus.SUCCESS)
    daily(name="z-late", grace_seconds=60)
    page = client.get("/tasks/").text
    assert "Schedules on time: 1 of 2" in page
    rows = page[page.index('class="scheduled-runs"') :]
    assert rows.index("z-late") < rows.index("a-fine")  # what needs the operator first
    assert "nothing sent for" in rows


def test_health_and_metrics_say_late_schedules_and_the_watch_heartbeat(
    app: Flask, client: FlaskClient, token_for, redis_client: redis.Redis
) -> None:
    viewer = bearer(token_for(Role.VIEWER))
    schedule = daily(name="idmc-06", grace_seconds=60)
    checks = client.get("/tasks/api/health/", headers=viewer).json["checks"]
    assert checks["beat"]["ok"] is False and checks["beat"]["late_schedules"] == ["idmc-06"]
    assert checks["watch"]["ok"] is False  # no watcher ever checked
    metrics = client.get("/metrics", headers=viewer).text
    assert sample(metrics, "ewas_schedule_state", schedule="idmc-06", state="late") == 1
    assert sample(metrics, "ewas_schedule_state", schedule="idmc-06", state="on_time") == 0
    assert sample(metrics, "ewas_schedule_lateness_seconds", schedule="idmc-06") > 3600
    assert sample(metrics, "ewas_watch_up") == 0
    ScheduleWatcher(app, redis_client, interval=1).tick()
    sent(schedule, TaskStatus.SUCCESS)
    checks = client.get("/tasks/api/health/", headers=viewer).json["checks"]
    assert checks["watch"]["ok"] is True and checks["beat"]["late_schedules"] == []
    metrics = client.get("/metrics", headers=viewer).text
    assert sample(metrics, "ewas_schedule_state", schedule="idmc-06", state="on_time") == 1
    assert sample(metrics, "ewas_schedule_lateness_seconds", schedule="idmc-06") == 0
    assert sample(metrics, "ewas_schedule_last_success_timestamp_seconds", schedule="idmc-06")
    assert sample(metrics, "ewas_watch_up") == 1
    assert sample(metrics, "ewas_watch_last_check_age_seconds") is not None
    redis_client.set(HEARTBEAT_KEY, 1.0)  # the watcher stopped long ago
    assert client.get("/tasks/api/health/").json["checks"]["watch"]["ok"] is False
    with app.app_context():
        from app.monitoring.health import health

        assert {"beat", "watch"} <= set(health()["failing"])


def test_flask_watch_once_prints_each_state(app: Flask, runner) -> None:
    assert "No schedules to watch." in runner.invoke(args=["watch", "--once"]).output
    daily(name="idmc-06", grace_seconds=60)
    result = runner.invoke(args=["watch", "--once"])
    assert result.exit_code == 0 and "\tlate\t" in result.output


def test_a_failing_reason_isolates_the_error_and_escapes_it(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    schedule = daily(name="failing")
    sent(schedule, TaskStatus.FAILURE, "ValueError: <script>alert(1)</script> [x]")
    row = client.get("/tasks/scheduled/").text
    assert (
        '<bdi dir="ltr" class="ltr">ValueError: &lt;script&gt;alert(1)&lt;/script&gt; [x]</bdi>'
        in row
    )
    assert "<script>alert" not in row


def test_the_watch_keeps_checking_while_redis_is_paused(app: Flask, own_redis) -> None:
    """A Redis that accepts connections and never answers (paused, partitioned) is an outage
    the watch rides out: its heartbeat write times out, and its checks, which read the
    database, go on raising the alerts an operator needs most at that moment."""
    watcher = ScheduleWatcher(app, own_redis_client(own_redis.url, timeout=0.5), interval=1)
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        for name in ("idmc-06", "idmc-07"):
            daily(name=name)
            done = threading.Thread(target=watcher.tick, daemon=True)
            done.start()
            done.join(timeout=15)
            assert not done.is_alive(), "the watch hung on a paused Redis"
        assert watcher.checks == 2 and watcher.redis_outage.ongoing
        states = dict(db.session.execute(select(ScheduledTask.name, ScheduleWatch.state).join(
            ScheduleWatch, ScheduleWatch.schedule_id == ScheduledTask.id)).all())  # fmt: skip
        assert states == {"idmc-06": "late", "idmc-07": "late"}
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
