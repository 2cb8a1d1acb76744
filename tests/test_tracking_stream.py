"""The tracking stream is trimmed only below what every consumer group acknowledged, and its
backlog (length, oldest unacknowledged entry) is in health and ``/metrics``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import redis
from flask import Flask
from flask.testing import FlaskClient

from app.models import Role
from app.tracking.emitter import STREAM
from app.tracking.recorder import GROUP, Recorder
from app.tracking.stream import backlog, trim_acknowledged
from tests.support import sample
from tests.test_recorder import counts, push, story

OTHER = "ewas:export"  # a second consumer group, e.g. another deployment reading the stream


def test_recorder_leaves_entries_a_second_group_still_needs(
    app: Flask, redis_client: redis.Redis
) -> None:
    events = [e for n in range(20) for e in story(str(uuid.uuid4()), time.time() + n)]
    push(redis_client, events)
    redis_client.xgroup_create(STREAM, OTHER, id="0")
    # the other group read 10 entries and acknowledged the first 4
    [(_stream, read)] = redis_client.xreadgroup(OTHER, "c1", {STREAM: ">"}, count=10)
    redis_client.xack(STREAM, OTHER, *[entry_id for entry_id, _ in read[:4]])
    Recorder(app=app, redis_client=redis_client).run(idle_exit=0.5)
    assert counts() == {"success": 20}
    remaining = [entry_id for entry_id, _ in redis_client.xrange(STREAM)]
    assert remaining[0] == read[4][0] and len(remaining) == 60 - 4
    # once the other group acknowledged everything, the next trim empties the stream
    [(_stream, rest)] = redis_client.xreadgroup(OTHER, "c1", {STREAM: ">"})
    redis_client.xack(STREAM, OTHER, *[entry_id for entry_id, _ in read[4:] + rest])
    assert trim_acknowledged(redis_client) == 56
    assert redis_client.xlen(STREAM) == 0


def test_trimming_keeps_entries_not_delivered_to_a_group(redis_client: redis.Redis) -> None:
    ids = [redis_client.xadd(STREAM, {"e": json.dumps({"n": n})}) for n in range(10)]
    assert trim_acknowledged(redis_client) == 0  # no group yet: everything waits for one
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    redis_client.xgroup_create(STREAM, OTHER, id="0")
    [(_s, read)] = redis_client.xreadgroup(GROUP, "r", {STREAM: ">"}, count=10)
    redis_client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in read])
    assert trim_acknowledged(redis_client) == 0  # OTHER was given nothing yet
    [(_s, read)] = redis_client.xreadgroup(OTHER, "o", {STREAM: ">"}, count=3)
    redis_client.xack(STREAM, OTHER, *[entry_id for entry_id, _ in read])
    assert trim_acknowledged(redis_client) == 3
    assert [entry_id for entry_id, _ in redis_client.xrange(STREAM)] == ids[3:]


def test_backlog_counts_pending_and_undelivered_entries(redis_client: redis.Redis) -> None:
    assert backlog(redis_client) == {
        "stream_length": 0,
        "unacknowledged": 0,
        "oldest_unacknowledged_seconds": None,
    }
    old = int((time.time() - 3600) * 1000)
    for n in range(5):  # written an hour ago
        redis_client.xadd(STREAM, {"e": "{}"}, id=f"{old}-{n}")
    found = backlog(redis_client)
    assert found["stream_length"] == 5 and found["unacknowledged"] == 5
    assert 3590 < found["oldest_unacknowledged_seconds"] < 7200
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "r", {STREAM: ">"}, count=2)  # 2 pending, 3 undelivered
    assert backlog(redis_client)["unacknowledged"] == 5
    [(_s, read)] = redis_client.xreadgroup(GROUP, "r", {STREAM: ">"})
    redis_client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in read])
    found = backlog(redis_client)
    assert found["unacknowledged"] == 2 and found["stream_length"] == 5
    redis_client.xack(STREAM, GROUP, f"{old}-0", f"{old}-1")
    assert backlog(redis_client)["unacknowledged"] == 0
    assert backlog(redis_client)["oldest_unacknowledged_seconds"] is None


def test_health_and_metrics_show_the_backlog_and_flag_it_past_the_threshold(
    app: Flask,
    client: FlaskClient,
    redis_client: redis.Redis,
    login_as: Callable[[FlaskClient, Role], str],
) -> None:
    login_as(client, Role.VIEWER)
    redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    old = int((time.time() - 120) * 1000)
    for n in range(3):
        redis_client.xadd(STREAM, {"e": "{}"}, id=f"{old}-{n}")
    redis_client.set("ewas:recorder:last_commit", time.time())  # the recorder is committing

    recorder = client.get("/tasks/api/health/").get_json()["checks"]["recorder"]
    assert recorder["ok"] and recorder["stream_length"] == 3 and recorder["backlog"] == 3
    assert 110 < recorder["oldest_unacknowledged_seconds"] < 3600
    assert not recorder["over_threshold"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert sample(metrics, "ewas_tracking_stream_entries") == 3
    assert sample(metrics, "ewas_tracking_unacknowledged_entries") == 3
    assert sample(metrics, "ewas_tracking_oldest_unacknowledged_age_seconds") > 110

    app.config["TRACKING_BACKLOG_ALERT_SECONDS"] = 60.0  # the oldest waits for two minutes
    recorder = client.get("/tasks/api/health/").get_json()["checks"]["recorder"]
    assert not recorder["ok"] and recorder["over_threshold"]
    app.config["TRACKING_BACKLOG_ALERT_SECONDS"] = 600.0
    app.config["TRACKING_BACKLOG_ALERT_ENTRIES"] = 2
    recorder = client.get("/tasks/api/health/").get_json()["checks"]["recorder"]
    assert not recorder["ok"] and recorder["over_threshold"]

    page = client.get("/tasks/dashboard/health")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "falling behind" in html and "Backlog over the alert threshold" in html
    assert "3 event entries waiting" in html
