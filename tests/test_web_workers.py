"""The workers page: real workers seen through their heartbeats, their controls, the states of
workers that stopped beating, permissions, CSRF and bad input."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role
from app.tracking.heartbeats import beat_once, live_workers, mark_stopped
from app.web.workers import _slug
from tests.support import HTMX, htmx, wait_for

FAST_BEATS = {"WORKER_HEARTBEAT_INTERVAL": "0.5"}


def heartbeat(client: redis.Redis, hostname: str, **info: Any) -> dict[str, Any]:
    """Write a heartbeat as a worker would (no process behind it)."""
    values = {
        "hostname": hostname,
        "host": "host-a",
        "pid": 4242,
        "queues": ["default", "aggregation"],
        "concurrency": 3,
        "active": 0,
        "active_tasks": [],
        "interval": 10.0,
        "last_seen": time.time(),
        **info,
    }
    beat_once(client, values)
    return values


def worker_audit() -> list[tuple[str, str, Any]]:
    """(action, outcome, details) of the audited worker commands, oldest first."""
    query = (
        select(AuditEntry.action, AuditEntry.outcome, AuditEntry.details)
        .where(AuditEntry.action.like("worker.%"))
        .order_by(AuditEntry.id)
    )
    return [tuple(row) for row in db.session.execute(query)]


def follow(client: FlaskClient, response: Any) -> str:
    """The page a 303 leads to (flashes included)."""
    assert response.status_code == 303, response.text
    return client.get(response.headers["Location"]).text


@pytest.fixture
def operator(client: FlaskClient, login_as: Callable) -> str:
    return login_as(client, Role.OPERATOR)


def pool_processes(worker: Any) -> list[psutil.Process]:
    return psutil.Process(worker.process.pid).children()


def worker_seen(redis_client: redis.Redis, hostname: str, check: Callable[[dict], bool]) -> dict:
    def found() -> dict | None:
        for info in live_workers(redis_client):
            if info["hostname"] == hostname and check(info):
                return info
        return None

    return wait_for(found, timeout=30)


def test_a_real_worker_shows_with_its_queues_and_active_task(
    app: Flask,
    client: FlaskClient,
    operator: str,
    start_worker: Callable,
    redis_client: redis.Redis,
) -> None:
    worker = start_worker(queues="default,aggregation", concurrency=1, **FAST_BEATS)
    worker_seen(redis_client, worker.hostname, lambda info: True)
    page = client.get("/tasks/workers/")
    assert page.status_code == 200
    html = page.text
    assert worker.hostname in html and '<code class="ltr" dir="ltr">aggregation</code>' in html
    assert 'class="status status-ok">live<' in html and "just now" in html
    assert f'id="{_slug(worker.hostname)}-controls"' in html and "data-live" in html

    task_id = app.extensions["celery"].send_task("tests.sleep", args=[6], queue="default").id
    worker_seen(redis_client, worker.hostname, lambda info: info["active_tasks"])
    html = client.get("/tasks/workers/", headers=HTMX).text
    assert "<html" not in html and 'id="workers-live"' in html
    assert "tests.sleep" in html and task_id[:8] in html
    linked = f"/tasks/executions/{task_id}/" in html
    assert linked == ("web.execution_detail" in app.view_functions)

    # The worker's only process is busy: it answers with an error, shown as one.
    response = client.post(
        f"/tasks/workers/{worker.hostname}/pool/shrink/", data={"n": 1, "csrf_token": operator}
    )
    html = follow(client, response)
    assert "flash-error" in html and "All processes busy" in html


def test_pool_grow_then_shrink_and_consumers_on_a_real_worker(
    client: FlaskClient, operator: str, start_worker: Callable, redis_client: redis.Redis
) -> None:
    worker = start_worker(queues="default", concurrency=1, **FAST_BEATS)
    name = worker.hostname
    worker_seen(redis_client, name, lambda info: True)
    base = f"/tasks/workers/{name}"

    html = follow(client, client.post(f"{base}/pool/grow/", data={"n": 2, "csrf_token": operator}))
    assert f"{name} answered: pool will grow" in html
    worker_seen(redis_client, name, lambda info: info["concurrency"] == 3)
    wait_for(lambda: len(pool_processes(worker)) == 3)  # the pool forks them a moment later
    html = follow(
        client, client.post(f"{base}/pool/shrink/", data={"n": 2, "csrf_token": operator})
    )
    assert f"{name} answered: pool will shrink" in html
    worker_seen(redis_client, name, lambda info: info["concurrency"] == 1)

    data = {"queue": "aggregation", "csrf_token": operator}
    html = follow(client, client.post(f"{base}/consumers/add/", data=data))
    assert "answered: add consumer aggregation" in html
    worker_seen(redis_client, name, lambda info: "aggregation" in info["queues"])
    assert "aggregation (consumed)" in client.get("/tasks/workers/").text
    html = follow(client, client.post(f"{base}/consumers/cancel/", data=data))
    assert "answered: no longer consuming from aggregation" in html
    worker_seen(redis_client, name, lambda info: info["queues"] == ["default"])

    assert worker_audit() == [
        ("worker.pool_grow", "ok", {"n": 2}),
        ("worker.pool_shrink", "ok", {"n": 2}),
        ("worker.add_consumer", "ok", {"queue": "aggregation"}),
        ("worker.cancel_consumer", "ok", {"queue": "aggregation"}),
    ]


def test_shutdown_stops_a_real_worker(
    client: FlaskClient, operator: str, start_worker: Callable, redis_client: redis.Redis
) -> None:
    worker = start_worker(queues="default", concurrency=1, **FAST_BEATS)
    worker_seen(redis_client, worker.hostname, lambda info: True)
    page = client.get("/tasks/workers/").text
    assert 'class="danger" data-confirm="Shut down' in page

    response = client.post(
        f"/tasks/workers/{worker.hostname}/shutdown/", data={"csrf_token": operator}
    )
    assert "Shutdown requested" in follow(client, response)
    assert worker.process is not None
    worker.process.wait(30)
    html = client.get("/tasks/workers/").text
    assert "Gone in the last 24 hours" in html and worker.hostname in html
    assert 'class="status status-disabled">stopped<' in html
    assert f'id="{_slug(worker.hostname)}-controls"' not in html
    assert worker_audit() == [("worker.shutdown", "ok", None)]


def test_states_of_workers_that_stopped_beating(
    client: FlaskClient, operator: str, redis_client: redis.Redis
) -> None:
    heartbeat(redis_client, "fresh@a")
    heartbeat(redis_client, "stale@a", last_seen=time.time() - 25)  # 2 beats missed, key alive
    heartbeat(redis_client, "lost@a", last_seen=time.time() - 120)
    redis_client.delete("ewas:worker:lost@a")  # the live key expired: no shutdown was seen
    heartbeat(redis_client, "stopped@a")
    mark_stopped(redis_client, "stopped@a")

    html = client.get("/tasks/workers/").text
    for hostname, css, label in [
        ("fresh@a", "ok", "live"),
        ("stale@a", "warning", "stale"),
        ("lost@a", "error", "lost"),
        ("stopped@a", "disabled", "stopped"),
    ]:
        section = html[html.index(f'<code class="ltr" dir="ltr">{hostname}</code>') :]
        assert section.index(f'<span class="status status-{css}">{label}</span>') < 200, hostname
    assert "1 live, 1 stale, 2 gone in the last 24 hours" in html
    assert "2 minutes ago" in html  # the lost worker's last heartbeat
    assert f'id="{_slug("stale@a")}-controls"' in html  # a stale worker may still answer
    assert f'id="{_slug("lost@a")}-controls"' not in html


def test_fragment_versus_page_and_conditional_get(
    client: FlaskClient, login_as: Callable, redis_client: redis.Redis
) -> None:
    login_as(client, Role.VIEWER)
    heartbeat(redis_client, "w1@host")
    page = client.get("/tasks/workers/")
    assert page.status_code == 200 and "<html" in page.text and "Workers</h1>" in page.text
    fragment = client.get("/tasks/workers/", headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-hx-trigger="every 10s"' in fragment.text and "data-live" in fragment.text
    assert "HX-Request" in fragment.headers["Vary"] and fragment.headers["ETag"]
    again = client.get("/tasks/workers/", headers=htmx(etag=fragment.headers["ETag"]))
    assert again.status_code == 304 and again.data == b""
    heartbeat(redis_client, "w1@host", concurrency=4)
    changed = client.get("/tasks/workers/", headers=htmx(etag=fragment.headers["ETag"]))
    assert changed.status_code == 200 and "<dd>4</dd>" in changed.text


def test_viewer_sees_no_controls_and_may_not_post(
    client: FlaskClient, login_as: Callable, redis_client: redis.Redis
) -> None:
    csrf = login_as(client, Role.VIEWER)
    heartbeat(redis_client, "w1@host")
    html = client.get("/tasks/workers/").text
    assert "w1@host" in html and '<form class="actions"' not in html and "Shut down" not in html
    for path in ("pool/grow/", "pool/shrink/", "consumers/add/", "consumers/cancel/", "shutdown/"):
        response = client.post(
            f"/tasks/workers/w1@host/{path}", data={"n": 1, "queue": "default", "csrf_token": csrf}
        )
        assert response.status_code == 403, path
    assert worker_audit() == []


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_operators_and_admins_see_controls(
    client: FlaskClient, login_as: Callable, redis_client: redis.Redis, role: Role
) -> None:
    login_as(client, role)
    heartbeat(redis_client, "w1@host")
    html = client.get("/tasks/workers/").text
    assert "/tasks/workers/w1@host/pool/grow/" in html
    assert 'formaction="/tasks/workers/w1@host/pool/shrink/"' in html


def test_anonymous_goes_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/tasks/workers/")
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]
    response = client.post("/tasks/workers/w1@host/shutdown/")
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]


def test_control_without_csrf_token_is_refused(
    client: FlaskClient, operator: str, redis_client: redis.Redis
) -> None:
    heartbeat(redis_client, "w1@host")
    response = client.post("/tasks/workers/w1@host/pool/grow/", data={"n": 1})
    assert response.status_code == 400 and "reload the page" in response.text
    assert worker_audit() == []


def test_unknown_worker_is_reported(client: FlaskClient, operator: str) -> None:
    for path, data in [
        ("pool/grow/", {"n": 1}),
        ("consumers/add/", {"queue": "default"}),
        ("shutdown/", {}),
        ("pool/shrink/", {"n": 0}),  # bad input for a worker that is not there: still unknown
    ]:
        response = client.post(
            f"/tasks/workers/ghost@nowhere/{path}", data={**data, "csrf_token": operator}
        )
        assert "No live worker named ghost@nowhere." in follow(client, response), path


def test_a_worker_that_does_not_answer_is_reported_without_waiting(
    client: FlaskClient, operator: str, redis_client: redis.Redis
) -> None:
    heartbeat(redis_client, "silent@host")  # a heartbeat, but no process to answer
    started = time.monotonic()
    response = client.post(
        "/tasks/workers/silent@host/pool/grow/", data={"n": 1, "csrf_token": operator}
    )
    assert time.monotonic() - started < 5
    html = follow(client, response)
    assert "silent@host did not answer within 1.0 s" in html and "flash-warning" in html
    assert worker_audit() == [("worker.pool_grow", "no_reply", {"n": 1})]


@pytest.mark.parametrize(
    ("path", "data", "field", "message"),
    [
        ("pool/grow/", {"n": "0"}, "n", "Number must be between 1 and 64."),
        ("pool/shrink/", {"n": "many"}, "n", "Not a valid integer value."),
        ("pool/grow/", {"n": "65"}, "n", "Number must be between 1 and 64."),
        ("consumers/add/", {"queue": "zzz"}, "queue", "Not a valid choice."),
        ("consumers/cancel/", {}, "queue", "Not a valid choice."),
    ],
)
def test_bad_input_is_shown_beside_the_field(
    client: FlaskClient,
    operator: str,
    redis_client: redis.Redis,
    path: str,
    data: dict,
    field: str,
    message: str,
) -> None:
    heartbeat(redis_client, "w1@host")
    response = client.post(f"/tasks/workers/w1@host/{path}", data={**data, "csrf_token": operator})
    assert response.status_code == 422
    error_id = f"{_slug('w1@host')}-{field}-errors"
    assert f'aria-describedby="{error_id}"' in response.text
    assert f'<span class="field-error" id="{error_id}">{message}' in response.text
    assert worker_audit() == []


def test_redis_down_is_a_clear_503(make_app: Callable, users: dict, login_as: Callable) -> None:
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    with broken.app_context():
        client = broken.test_client()
        login_as(client, Role.OPERATOR)
        response = client.get("/tasks/workers/")
    assert response.status_code == 503 and "Redis is not answering" in response.text
