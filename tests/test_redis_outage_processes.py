"""A worker and a recorder on a production-like Redis (append-only file on) that restarts, and on
one whose database is flushed, while tasks run: every execution ends final, or, when the broker
itself lost its message, is flagged lost with an alert and succeeds when retried; every process
is still running afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask, current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, TaskExecution, TaskStatus
from app.monitoring.queues import held_by_broker
from app.tracking.emitter import STREAM
from app.tracking.orphans import CANDIDATES_KEY, recorded_until
from app.tracking.recorder import GROUP
from app.tracking.retry import retry_execution
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
    """Each recorded execution's status, ``lost`` for a pending one the engine flagged lost."""
    db.session.rollback()
    rows = db.session.execute(
        select(TaskExecution.task_id, TaskExecution.status, TaskExecution.lost_suspect).where(
            TaskExecution.task_id.in_(task_ids)
        )
    )
    return {
        task_id: "lost" if lost and status == TaskStatus.PENDING else status.value
        for task_id, status, lost in rows
    }


def settled(task_ids: list[str]) -> bool:
    found = statuses(task_ids)
    return len(found) == len(task_ids) and set(found.values()) <= {"success", "lost"}


def wait_final(task_ids: list[str], *processes, timeout: float = 120) -> list[str]:
    """Wait until every execution succeeded or was flagged lost; return the lost ones."""
    try:
        wait_for(lambda: settled(task_ids), timeout=timeout)
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
        client = redis.Redis.from_url(current_app.config["REDIS_URL"])
        stream = {
            "groups": client.xinfo_groups(STREAM),
            "pending": client.xpending(STREAM, GROUP),
            "recorded_until_age": time.time() - recorded_until(client, GROUP),
            "candidates": client.hgetall(CANDIDATES_KEY),
        }
        logs = "\n".join(p.log()[-2500:] for p in processes)
        raise AssertionError(
            f"{len(task_ids) - len(found)} unrecorded, {counts}\n{traces}\n{stream}\n{logs}"
        ) from None
    return [task_id for task_id, status in statuses(task_ids).items() if status == "lost"]


def retried_lost(lost: list[str]) -> list[str]:
    """A message the broker lost is never silent: its execution was flagged lost with an alert,
    no queue or worker holds it, and Retry sends it again. Returns the retries' ids."""
    if not lost:
        return []
    client = redis.Redis.from_url(current_app.config["REDIS_URL"])
    assert held_by_broker(client, lost) == set()
    alerted = set(
        db.session.scalars(
            select(Alert.task_id).where(Alert.kind == "lost_execution", Alert.task_id.in_(lost))
        )
    )
    assert alerted == set(lost)
    retries = [retry_execution(task_id) for task_id in lost]
    db.session.commit()
    return retries


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
    # as for a dead worker's message; shortened here (the slowest task takes 3 s). A restart
    # just after kombu's pop and before that pipeline loses the message itself: the recorder's
    # lost scan (two rounds, shortened too) flags it.
    env = {
        "REDIS_URL": durable_redis.url,
        "BROKER_VISIBILITY_TIMEOUT": "20",
        "BROKER_RESTORE_INTERVAL": "2",
        "RECORDER_UPKEEP_SECONDS": "2",
        "LOST_PENDING_AFTER_SECONDS": "10",
    }
    worker = start_worker(queues="default", concurrency=2, **env)
    recorder = start_recorder(**env)
    with engine.app_context():
        before = send(engine, 60)
        wait_for(lambda: len(statuses(before)) > 10, timeout=60)
        durable_redis.stop()  # mid-flow: some queued, some running, events in flight
        durable_redis.start()  # the append-only file brings the queues and the stream back
        after_restart = send(engine, 60)
        lost = wait_final(before + after_restart, worker, recorder)
        retries = retried_lost(lost)

        running = send(engine, 2, seconds=3.0)
        wait_for(lambda: list(statuses(running).values()).count("started") == 2, timeout=60)
        redis.Redis.from_url(durable_redis.url).flushdb()  # stream, group, heartbeats gone
        after_flush = send(engine, 30)
        lost += wait_final(running + after_flush, worker, recorder)
        retries += retried_lost(lost[len(retries) :])
        assert wait_final(retries, worker, recorder) == []

        assert worker.process.poll() is None, worker.log()[-3000:]
        assert recorder.process.poll() is None, recorder.log()[-3000:]
        everything = [t for t in before + after_restart + running + after_flush if t not in lost]
        everything += retries
        assert db.session.scalar(
            select(func.count()).where(
                TaskExecution.task_id.in_(everything), TaskExecution.status == TaskStatus.SUCCESS
            )
        ) == len(everything)
        assert "Traceback" not in recorder.log()
