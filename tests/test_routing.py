"""Queue routing: each spec glob sends its tasks to its queue on the real Redis broker."""

from __future__ import annotations

import json

import pytest
import redis
from flask import Flask

from celeryconfig import TASK_QUEUES

ROUTES = [
    ("data_pipeline.tasks.retrieve_source", "data_retrieval"),
    ("data_pipeline.tasks.retrieve_anything_else", "data_retrieval"),
    ("data_pipeline.tasks.process_raw", "data_processing"),
    ("data_pipeline.tasks.validate_data", "data_processing"),
    ("data_pipeline.tasks.aggregate_country_month", "aggregation"),
    ("task_monitoring.tasks.health_check", "monitoring"),
    ("task_monitoring.tasks.aggregate_daily_statistics", "monitoring"),
    ("task_monitoring.tasks.snapshot_queues", "monitoring"),
    ("location.tasks.match_locations", "location_processing"),
    ("maintenance.tasks.cleanup_old_executions", "maintenance"),
    ("data_pipeline.tasks.run_full_pipeline", "default"),
    ("some.unrouted.task", "default"),
]


def queued_task_names(client: redis.Redis, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]


@pytest.mark.parametrize(("task_name", "queue"), ROUTES)
def test_task_lands_in_its_queue(
    app: Flask, redis_client: redis.Redis, task_name: str, queue: str
) -> None:
    celery = app.extensions["celery"]
    celery.send_task(task_name, kwargs={"source": "idmc"})
    assert queued_task_names(redis_client, queue) == [task_name]
    others = [q for q in TASK_QUEUES if q != queue]
    assert all(redis_client.llen(q) == 0 for q in others)


def test_explicit_queue_overrides_the_route(app: Flask, redis_client: redis.Redis) -> None:
    app.extensions["celery"].send_task("data_pipeline.tasks.retrieve_source", queue="dead_letter")
    assert queued_task_names(redis_client, "dead_letter") == ["data_pipeline.tasks.retrieve_source"]


def test_reliability_settings(app: Flask) -> None:
    conf = app.extensions["celery"].conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.timezone == "UTC" and conf.enable_utc
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert set(TASK_QUEUES) == {q.name for q in conf.task_queues}
