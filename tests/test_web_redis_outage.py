"""The web process while Redis is down, hung or read-only: pages and API calls that need Redis
answer a clear 503 (never a 500 or a hang), sign-in keeps working and stays rate-limited, and
everything read from the database still renders."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import Role, TaskStatus
from tests import factories
from tests.scheduler_support import RedisServer

# Pages and answers that cannot be made without Redis; all others must answer 2xx/3xx.
NEEDS_REDIS = {
    "/tasks/queues/", "/tasks/workers/", "/tasks/api/workers/", "/tasks/api/queues/",
    "/tasks/quarantine/",  # the quarantine is a Redis stream
}  # fmt: skip
# A hung Redis costs each call its socket timeout: these pages stand for the rest.
HUNG_WALK = ["/tasks/", "/tasks/executions/", "/tasks/queues/", "/tasks/api/health/",
             "/tasks/api/workers/", "/tasks/scheduled/"]  # fmt: skip


def plain_get_routes(app: Flask) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith("/static")
    )


@pytest.fixture(params=["refused", "hung"])
def broken_redis(request: pytest.FixtureRequest, own_redis: RedisServer) -> Iterator[str]:
    """Redis refusing connections (stopped), or accepting them and never answering (SIGSTOP)."""
    if request.param == "refused":
        own_redis.stop()
        yield "refused:" + own_redis.url
        return
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        yield "hung:" + own_redis.url
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)


def test_every_page_answers_while_redis_is_down(
    make_app: Callable[..., Flask], users: dict, login_as: Callable, broken_redis: str
) -> None:
    broken = make_app(REDIS_URL=broken_redis.split(":", 1)[1], PROPAGATE_EXCEPTIONS=False)
    with broken.app_context():
        client: FlaskClient = broken.test_client()
        login_as(client, Role.ADMIN)  # the sign-in limit falls back to memory
        failed = {}
        paths = plain_get_routes(broken) if broken_redis.startswith("refused") else HUNG_WALK
        for path in paths:
            response = client.get(path)
            needs_redis = path in NEEDS_REDIS or path.startswith("/tasks/api/health")
            allowed = {503} if needs_redis else set()
            if response.status_code >= 500 and response.status_code not in allowed:
                failed[path] = response.status_code
        assert failed == {}
        api = client.get("/tasks/api/workers/")
        assert api.status_code == 503 and api.json["error"]["code"] == "redis_unavailable"
        assert api.headers["Retry-After"] == "5"


def test_a_retry_while_redis_is_down_is_a_clear_503(
    make_app: Callable[..., Flask], users: dict, login_as: Callable, own_redis: RedisServer
) -> None:
    broken = make_app(REDIS_URL=own_redis.url, PROPAGATE_EXCEPTIONS=False)
    own_redis.stop()
    with broken.app_context():
        failed = factories.execution(
            task_name="tests.add", status=TaskStatus.FAILURE, args=[1, 2], queue="default"
        )
        db.session.commit()
        client = broken.test_client()
        token = login_as(client, Role.OPERATOR)
        response = client.post(
            f"/tasks/api/executions/{failed.task_id}/retry/",
            headers={"X-CSRFToken": token},
        )
        assert response.status_code == 503, response.text
        assert response.json["error"]["code"] == "redis_unavailable"
