"""Confirmed tracking writes: a flush Redis did not confirm is kept and sent again.

Each test runs against a redis-server of its own (own_redis), so it can kill connections,
restart, pause or fill the server without touching anyone else's.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from app.tracking.emitter import CLIENT_NAME, STREAM, Emitter
from tests.scheduler_support import RedisServer
from tests.support import wait_for


def stream_events(client: redis.Redis) -> list[dict]:
    """Every event in the tracking stream, in stream order."""
    found = []
    for _entry_id, fields in client.xrange(STREAM):
        payload = json.loads(fields[b"e"])
        found += payload if isinstance(payload, list) else [payload]
    return found


def numbers(client: redis.Redis) -> list[int]:
    return [event["n"] for event in stream_events(client)]


def kill_emitter_connections(client: redis.Redis) -> int:
    """CLIENT KILL every tracking connection (found by its name), as a proxy or an idle timeout
    would close it; returns how many were killed."""
    killed = 0
    for entry in client.client_list():
        if entry.get("name", "").startswith(CLIENT_NAME):
            killed += client.client_kill_filter(_id=entry["id"])
    return killed


@pytest.fixture
def own_client(own_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def make_emitter(own_redis: RedisServer) -> Iterator[Callable[..., Emitter]]:
    emitters: list[Emitter] = []

    def make(confirm_timeout: float = 5.0) -> Emitter:
        emitter = Emitter(own_redis.url, confirm_timeout=confirm_timeout)
        emitters.append(emitter)
        return emitter

    yield make
    for emitter in emitters:
        emitter.close()


def emit_range(emitter: Emitter, start: int, stop: int) -> None:
    for n in range(start, stop):
        emitter.emit({"n": n})


def test_connection_killed_between_flushes_loses_nothing(
    own_client: redis.Redis, make_emitter: Callable[..., Emitter]
) -> None:
    emitter = make_emitter()
    emit_range(emitter, 0, 50)
    assert emitter.flush()
    assert kill_emitter_connections(own_client) == 1
    # The next write goes out on a socket Redis closed: only the missing replies tell.
    emit_range(emitter, 50, 100)
    assert emitter.flush()
    assert numbers(own_client) == list(range(100))  # in order, nothing confirmed sent twice


def test_worker_final_events_survive_a_killed_connection(
    make_app: Callable[..., Flask],
    own_redis: RedisServer,
    own_client: redis.Redis,
    start_worker: Callable,
) -> None:
    start_worker(concurrency=1, REDIS_URL=own_redis.url)
    celery = make_app(REDIS_URL=own_redis.url).extensions["celery"]

    def final_event_of(task_id: str) -> bool:
        return any(
            e["task_id"] == task_id and e["kind"] == "succeeded" for e in stream_events(own_client)
        )

    first = celery.send_task("tests.add", args=[1, 2]).id
    wait_for(lambda: final_event_of(first), timeout=60)
    for _round in range(3):
        # The pool process's connection (and the main process's, which sends nothing here).
        wait_for(lambda: kill_emitter_connections(own_client), timeout=30)
        task_id = celery.send_task("tests.add", args=[3, 4]).id
        wait_for(lambda task_id=task_id: final_event_of(task_id), timeout=60)


def test_events_written_during_a_redis_restart_are_kept_and_sent_after(
    own_redis: RedisServer,
    make_emitter: Callable[..., Emitter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.tracking.emitter")
    emitter = make_emitter(confirm_timeout=0.5)
    emit_range(emitter, 0, 10)
    assert emitter.flush()
    own_redis.stop()
    emit_range(emitter, 10, 200)
    assert not emitter.flush()  # unconfirmed: kept
    assert emitter.buffered == 190
    own_redis.start()  # no persistence: it comes back empty
    client = redis.Redis.from_url(own_redis.url)
    wait_for(lambda: emitter.buffered == 0, timeout=30)  # the background thread sent them
    assert numbers(client) == list(range(10, 200))
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Redis unavailable" in m for m in messages) == 1, messages
    assert sum("Redis back after" in m for m in messages) == 1, messages


def test_refused_writes_are_kept_until_redis_accepts_them(
    own_client: redis.Redis, make_emitter: Callable[..., Emitter]
) -> None:
    emitter = make_emitter(confirm_timeout=0.5)
    emit_range(emitter, 0, 5)
    assert emitter.flush()
    own_client.config_set("maxmemory-policy", "noeviction")
    own_client.config_set("maxmemory", 1)
    emit_range(emitter, 5, 10_000)  # more than one write sends: kept and sent in parts
    assert not emitter.flush()  # every XADD answered OOM
    assert emitter.buffered == 9995
    assert numbers(own_client) == list(range(5))
    own_client.config_set("maxmemory", 0)
    assert emitter.flush()
    assert emitter.buffered == 0
    assert numbers(own_client) == list(range(10_000))


def test_a_final_event_during_an_outage_returns_within_the_bounded_wait(
    own_redis: RedisServer, own_client: redis.Redis, make_emitter: Callable[..., Emitter]
) -> None:
    emitter = make_emitter(confirm_timeout=1.0)
    emit_range(emitter, 0, 3)
    assert emitter.flush()
    # A hung Redis (accepts connections, never answers) is the hard case: no error, only time.
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        returned = threading.Event()

        def final() -> None:
            emitter.emit({"n": 3, "final": True}, flush=True)
            returned.set()

        threading.Thread(target=final, daemon=True).start()
        assert returned.wait(30), "the final flush did not give up after its bounded wait"
        assert emitter.buffered >= 1  # kept (or in a send) for the background thread
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    wait_for(lambda: emitter.buffered == 0, timeout=30)
    got = numbers(own_client)
    assert got[:3] == [0, 1, 2] and set(got) == {0, 1, 2, 3}  # a lost reply may repeat one


def test_a_refused_final_event_is_still_sent_after_the_wait(
    own_client: redis.Redis, make_emitter: Callable[..., Emitter]
) -> None:
    emitter = make_emitter(confirm_timeout=0.5)
    own_client.config_set("maxmemory-policy", "noeviction")
    own_client.config_set("maxmemory", 1)
    emitter.emit({"n": 0}, flush=True)  # returns after the wait, unconfirmed
    assert emitter.buffered == 1 and numbers(own_client) == []
    own_client.config_set("maxmemory", 0)
    wait_for(lambda: numbers(own_client) == [0], timeout=30)


def test_a_forked_child_writes_on_its_own_connection_and_not_the_parents_events(
    own_client: redis.Redis, make_emitter: Callable[..., Emitter]
) -> None:
    emitter = make_emitter()
    assert emitter.flush()  # the parent has a connection and a flush thread
    emitter.emit({"n": 0})  # still buffered in the parent at the fork
    child = os.fork()
    if child == 0:  # a prefork pool process
        emitter.emit({"n": 1})
        os._exit(0 if emitter.flush() else 1)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert emitter.flush()
    assert sorted(numbers(own_client)) == [0, 1]  # each once: the child did not resend the 0
