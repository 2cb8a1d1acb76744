"""The recorder: batched, idempotent, crash-safe and patient with the database."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator

import redis
from flask import Flask
from sqlalchemy import create_engine, func, make_url, select, text

from app.extensions import db
from app.models import TaskExecution, TaskStatus
from app.tracking import events as ev
from app.tracking.emitter import STREAM
from app.tracking.recorder import GROUP, LAG_KEY, Recorder
from tests.support import wait_for


def story(task_id: str, t0: float) -> list[dict]:
    run_id = str(uuid.uuid4())
    return [
        {
            "kind": ev.PUBLISHED,
            "task_id": task_id,
            "ts": t0,
            "attempt": 0,
            "fields": {"task_name": "bench.noop", "queue": "default", "args": [1], "kwargs": {}},
        },
        {
            "kind": ev.STARTED,
            "task_id": task_id,
            "ts": t0 + 0.01,
            "attempt": 0,
            "run_id": run_id,
            "fields": {"worker": "w@h", "task_type": "processing"},
        },
        {
            "kind": ev.SUCCEEDED,
            "task_id": task_id,
            "ts": t0 + 0.02,
            "attempt": 0,
            "run_id": run_id,
            "fields": {"result": {"ok": True}, "cpu_seconds": 0.001, "worker": "w@h"},
        },
    ]


def push(client: redis.Redis, batch: list[dict]) -> None:
    pipe = client.pipeline(transaction=False)
    for event in batch:
        pipe.xadd(STREAM, {"e": json.dumps(event)})
    pipe.execute()


def pending_events(client: redis.Redis) -> int:
    """Events read by a recorder and not acknowledged (0 before any recorder made its group)."""
    try:
        return client.xpending(STREAM, GROUP)["pending"]
    except redis.ResponseError:  # NOGROUP
        return 0


def counts(task_ids: list[str] | None = None) -> dict[str, int]:
    """Executions by status: of ``task_ids``, or all of them."""
    db.session.rollback()
    query = select(TaskExecution.status, func.count()).group_by(TaskExecution.status)
    if task_ids is not None:
        query = query.where(TaskExecution.task_id.in_(task_ids))
    return {status.value: number for status, number in db.session.execute(query).all()}


def drain(app: Flask, client: redis.Redis, **options) -> Recorder:
    recorder = Recorder(app=app, redis_client=client, **options)
    recorder.run(idle_exit=0.5)
    return recorder


def test_duplicates_and_any_order_give_the_right_rows(
    app: Flask, redis_client: redis.Redis
) -> None:
    t0 = time.time()
    task_ids = [str(uuid.uuid4()) for _ in range(300)]
    events = [e for n, task_id in enumerate(task_ids) for e in story(task_id, t0 + n)]
    shuffled = events + random.sample(events, 400)  # 400 duplicates
    random.shuffle(shuffled)
    push(redis_client, shuffled)
    drain(app, redis_client, batch_size=97)
    assert counts(task_ids) == {"success": 300}
    row = db.session.scalar(select(TaskExecution).limit(1))
    assert row.worker == "w@h" and row.result == {"ok": True} and row.task_type.name == "processing"
    assert row.started_at < row.completed_at and row.created_at.timestamp() >= t0
    assert [run["status"] for run in row.attempts] == ["success"]
    assert redis_client.xlen(STREAM) == 0  # acknowledged and deleted


def test_events_for_one_task_split_across_batches(app: Flask, redis_client: redis.Redis) -> None:
    task_id = str(uuid.uuid4())
    published, started, succeeded = story(task_id, time.time())
    for event in (succeeded, published, started, published):
        push(redis_client, [event])
        drain(app, redis_client)
    row = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))
    assert row.status == TaskStatus.SUCCESS and row.task_name == "bench.noop"


def test_recorder_killed_mid_batch_loses_nothing(
    app: Flask, redis_client: redis.Redis, start_recorder
) -> None:
    t0 = time.time()
    task_ids = [str(uuid.uuid4()) for _ in range(3000)]
    push(redis_client, [e for n, t in enumerate(task_ids) for e in story(t, t0 + n / 1000)])
    first = start_recorder("--batch-size", "200")

    def paused_holding_a_batch() -> bool:
        """Pause the recorder; keep it paused only once it committed a batch and holds one
        read but unacknowledged (mid batch), else let it run on a little."""
        first.kill(signal.SIGSTOP)
        if redis_client.get(LAG_KEY) and redis_client.xpending(STREAM, GROUP)["pending"]:
            return True
        first.kill(signal.SIGCONT)
        return False

    wait_for(paused_holding_a_batch, timeout=60, interval=0.01)
    first.kill(signal.SIGKILL)
    pending = redis_client.xpending(STREAM, GROUP)["pending"]
    assert 0 < pending <= 200 and counts().get("success", 0) < 3000
    start_recorder("--batch-size", "500", "--claim-idle", "1")

    def all_recorded() -> bool:
        return (
            counts().get("success") == 3000 and redis_client.xpending(STREAM, GROUP)["pending"] == 0
        )

    wait_for(all_recorded, timeout=120, interval=0.5)
    assert sum(counts().values()) == 3000


@contextlib.contextmanager
def database_outage(url: str) -> Iterator[None]:
    """Make the database refuse the recorder for a while (really, not a mock)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = sqlite3.connect(parsed.database, isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = parsed.database
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_database_outage_only_delays_rows(app: Flask, redis_client: redis.Redis) -> None:
    recorder = Recorder(app=app, redis_client=redis.Redis.from_url(app.config["REDIS_URL"]))
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    ids = [str(uuid.uuid4()) for _ in range(50)]
    db.session.remove()
    with database_outage(app.config["SQLALCHEMY_DATABASE_URI"]):
        push(redis_client, [e for n, t in enumerate(ids) for e in story(t, time.time() + n)])
        # The recorder read the events and cannot commit them: on SQLite it waits on the lock
        # (busy timeout 10 s), PostgreSQL refuses it outright (a real error, retried).
        refused = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "sqlite"
        wait_for(
            lambda: (
                pending_events(redis_client) >= 1
                and (recorder.db_outage.failures >= 1 or not refused)
            ),
            timeout=120,
        )
        # the recorder holds what it read, unacknowledged, and keeps retrying it
        assert redis_client.xpending(STREAM, GROUP)["pending"] >= 1
        assert redis_client.xlen(STREAM) == 150
        assert recorder.stats["events"] == 0
    wait_for(lambda: counts().get("success") == 50, timeout=60, interval=0.5)
    stop.set()
    thread.join(10)
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
