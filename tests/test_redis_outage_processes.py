"""A worker and a recorder on a production-like Redis (append-only file on) that restarts, and on
one whose database is flushed, while tasks run: every execution ends final, nothing is lost, and
every process is still running afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask, current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import TaskExecution, TaskStatus
from app.monitoring.queues import held_by_broker
from tests.scheduler_support import RedisServer
from tests.support import wait_for

pytestmark = [
    pytest.mark.timeout(240),
]


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(None, tmp_path / "durable-redis", append_only=True).start()
    yield server
    server.stop()


def statuses(task_ids: list[str]) -> dict[str, str]:
    db.session.rollback()
    rows = db.session.execute(
        select(TaskExecution.task_id, TaskExecution.status).where(
            TaskExecution.task_id.in_(task_ids)
        )
    )
    return {task_id: status.value for task_id, status in rows}


def all_final(task_ids: list[str]) -> bool:
    found = statuses(task_ids)
    return len(found) == len(task_ids) and all(s == "success" for s in found.values())


def wait_final(task_ids: list[str], *processes, timeout: float = 120) -> None:
    try:
        wait_for(lambda: all_final(task_ids), timeout=timeout)
    except AssertionError:
        found = statuses(task_ids)
        counts = {s: list(found.values()).count(s) for s in set(found.values())}
        stuck = [t for t in task_ids if found.get(t) != "success"]
        held = held_by_broker(redis.Redis.from_url(current_app.config["REDIS_URL"]), stuck)
        traces = "\n".join(
            f"{t} {found.get(t)} held by broker: {t in held}\n"
            + "\n".join(line for p in processes for line in p.log().splitlines() if t in line)
            for t in stuck
        )
        logs = "\n".join(p.log()[-2500:] for p in processes)
        raise AssertionError(
            f"{len(task_ids) - len(found)} unrecorded, {counts}\n{traces}\n{logs}"
        ) from None


def send(app: Flask, count: int, seconds: float = 0.02) -> list[str]:
    celery = app.extensions["celery"]
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for task_id in ids:
        celery.send_task("tests.sleep", args=[seconds], task_id=task_id, queue="default")
    return ids


def test_worker_and_recorder_ride_out_a_redis_restart_and_a_flush(
    make_app: Callable[..., Flask],
    app: Flask,
    durable_redis: RedisServer,
    start_worker: Callable,
    start_recorder: Callable,
) -> None:
    engine = make_app(REDIS_URL=durable_redis.url)
    # A message Redis was handing to the worker as it stopped can be left reserved with nobody
    # holding it: kombu pops it and records it as unacknowledged in one pipeline whose reply is
    # lost, so the worker never sees it. Redis hands it out again after the visibility timeout,
    # as for a dead worker's message; shortened here (the slowest task takes 3 s).
    env = {
        "REDIS_URL": durable_redis.url,
        "BROKER_VISIBILITY_TIMEOUT": "20",
        "BROKER_RESTORE_INTERVAL": "2",
    }
    worker = start_worker(queues="default", concurrency=2, **env)
    recorder = start_recorder(**env)
    with engine.app_context():
        before = send(engine, 60)
        wait_for(lambda: len(statuses(before)) > 10, timeout=60)
        durable_redis.stop()  # mid-flow: some queued, some running, events in flight
        durable_redis.start()  # the append-only file brings the queues and the stream back
        after_restart = send(engine, 60)
        wait_final(before + after_restart, worker, recorder)

        running = send(engine, 2, seconds=3.0)
        wait_for(lambda: list(statuses(running).values()).count("started") == 2, timeout=60)
        redis.Redis.from_url(durable_redis.url).flushdb()  # stream, group, heartbeats gone
        after_flush = send(engine, 30)
        wait_final(running + after_flush, worker, recorder)

        assert worker.process.poll() is None, worker.log()[-3000:]
        assert recorder.process.poll() is None, recorder.log()[-3000:]
        everything = before + after_restart + running + after_flush
        assert db.session.scalar(
            select(func.count()).where(
                TaskExecution.task_id.in_(everything), TaskExecution.status == TaskStatus.SUCCESS
            )
        ) == len(everything)
        assert "Traceback" not in recorder.log()
