"""The quarantine page: admins list, discard and re-send refused tracking events; others may not."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role, TaskExecution, TaskStatus
from app.tracking import quarantine
from app.tracking.emitter import STREAM
from tests.support import sample
from tests.test_recorder import drain, story


def quarantined(client: redis.Redis, count: int) -> list[str]:
    """Quarantine ``count`` events (the way the recorder does); their task ids, oldest first."""
    task_ids = []
    for n in range(count):
        task_id = str(uuid.uuid4())
        event = story(task_id, time.time())[2]
        quarantine.put(client, event, ValueError(f"refused <b>{n}</b>\nsecond line"), f"1-{n}")
        task_ids.append(task_id)
    return task_ids


def audited(action: str) -> list[AuditEntry]:
    db.session.rollback()
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def test_admin_lists_newest_first_with_paging(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, login_as: Callable
) -> None:
    task_ids = quarantined(redis_client, 53)
    login_as(client, Role.ADMIN)
    page = client.get("/tasks/quarantine/")
    assert page.status_code == 200
    text = page.text
    assert "53 quarantined events." in text and "Quarantine" in text
    assert text.index(task_ids[-1]) < text.index(task_ids[-2])  # newest first
    assert task_ids[0] not in text and "refused &lt;b&gt;52&lt;/b&gt;" in text
    assert "second line" not in text  # the error's first line only
    older = client.get("/tasks/quarantine/", query_string={"before": "x" * 5000})
    assert older.status_code == 200  # a cursor that is no stream id is ignored
    [cursor] = [e.id for e in quarantine.newest(redis_client, limit=50)[0][-1:]]
    second = client.get("/tasks/quarantine/", query_string={"before": cursor}).text
    assert all(task_id in second for task_id in task_ids[:3]) and task_ids[-1] not in second
    assert "/tasks/quarantine/" in client.get("/tasks/audit/").text  # in the navigation


def test_viewers_and_operators_may_not(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, login_as: Callable
) -> None:
    quarantined(redis_client, 1)
    [entry], _ = quarantine.newest(redis_client)
    for role in (Role.VIEWER, Role.OPERATOR):
        csrf = login_as(client, role)
        assert client.get("/tasks/quarantine/").status_code == 403
        answer = client.post(f"/tasks/quarantine/{entry.id}/discard/", data={"csrf_token": csrf})
        assert answer.status_code == 403
        assert (
            client.post("/tasks/quarantine/discard-all/", data={"csrf_token": csrf}).status_code
            == 403
        )
        client.post("/tasks/logout/", data={"csrf_token": csrf})
    assert quarantine.count(redis_client) == 1


def test_discard_one_and_all_are_audited(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, login_as: Callable
) -> None:
    quarantined(redis_client, 3)
    csrf = login_as(client, Role.ADMIN)
    newest = quarantine.newest(redis_client)[0][0]
    answer = client.post(f"/tasks/quarantine/{newest.id}/discard/", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["Location"] == "/tasks/quarantine/"
    assert quarantine.count(redis_client) == 2
    [entry] = audited("quarantine.discard")
    assert entry.target_id == newest.id and entry.actor_name == "admin"
    assert entry.details["task_id"] == newest.task_id
    gone = client.post(f"/tasks/quarantine/{newest.id}/discard/", data={"csrf_token": csrf})
    assert gone.status_code == 303 and "no longer exists" in client.get("/tasks/quarantine/").text
    bad = client.post("/tasks/quarantine/not-an-id/discard/", data={"csrf_token": csrf})
    assert bad.status_code == 303 and quarantine.count(redis_client) == 2
    client.post("/tasks/quarantine/discard-all/", data={"csrf_token": csrf})
    assert quarantine.count(redis_client) == 0
    assert audited("quarantine.discard_all")[0].details == {"count": 2}
    assert "No quarantined events." in client.get("/tasks/quarantine/").text


def test_resend_puts_the_event_back_for_the_recorder(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, login_as: Callable
) -> None:
    task_id = str(uuid.uuid4())
    published, started, succeeded = story(task_id, time.time())
    quarantine.put(redis_client, succeeded, ValueError("cause since fixed"), "5-0")
    csrf = login_as(client, Role.ADMIN)
    [entry], _ = quarantine.newest(redis_client)
    answer = client.post(f"/tasks/quarantine/{entry.id}/resend/", data={"csrf_token": csrf})
    assert answer.status_code == 303 and quarantine.count(redis_client) == 0
    [audit] = audited("quarantine.resend")
    assert audit.details["task_id"] == task_id
    [(_id, fields)] = redis_client.xrange(STREAM)
    assert json.loads(fields[b"e"]) == succeeded
    redis_client.xadd(STREAM, {"e": json.dumps([published, started])})
    drain(app, redis_client)
    row = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    assert row.status == TaskStatus.SUCCESS


def test_health_and_metrics_count_the_quarantine(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, login_as: Callable
) -> None:
    quarantined(redis_client, 4)
    login_as(client, Role.ADMIN)
    health = client.get("/tasks/api/health/").get_json()
    assert health["checks"]["recorder"]["quarantined"] == 4
    metrics = client.get("/metrics").text
    assert sample(metrics, "ewas_tracking_quarantined_events") == 4
    from app.monitoring.health import health as system_health

    assert system_health(redis_client)["checks"]["recorder"]["quarantined"] == 4
    assert "4 events quarantined" in client.get("/tasks/dashboard/health").text
