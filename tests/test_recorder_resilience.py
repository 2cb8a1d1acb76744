"""The recorder rides out Redis, isolates poison events, and the values of events are bounded."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import redis
from flask import Flask
from sqlalchemy import create_engine, func, make_url, select, text, update

from app.extensions import db
from app.models import Alert, ExecutionHourly, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.tracking import events as ev
from app.tracking import quarantine
from app.tracking.alerts import claim, notify
from app.tracking.bounds import CUT_MARKER, bound_event
from app.tracking.emitter import STREAM
from app.tracking.recorder import GROUP, Decoded, Recorder
from tests import factories
from tests.scheduler_support import RedisServer
from tests.support import REFUSED_PORT, wait_for
from tests.test_recorder import counts, drain, push, story
from tests.test_tracking import send, wait_status


def recorded(task_ids: list[str]) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(
            TaskExecution.task_id.in_(task_ids), TaskExecution.status == TaskStatus.SUCCESS
        )
    )


def test_recorder_rides_out_a_redis_restart_and_a_flush(
    app: Flask, own_redis: RedisServer, start_recorder
) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=2)
    recorder = start_recorder(REDIS_URL=own_redis.url)
    first = [str(uuid.uuid4()) for _ in range(20)]
    push(client, [e for t in first for e in story(t, time.time())])
    wait_for(lambda: recorded(first) == 20, timeout=60, interval=0.2)

    own_redis.stop()  # refused connections, then an empty server on the same port
    time.sleep(2)  # the scenario: 2 s of refused connections
    own_redis.start()
    second = [str(uuid.uuid4()) for _ in range(20)]
    push(client, [e for t in second for e in story(t, time.time())])
    wait_for(lambda: recorded(second) == 20, timeout=60, interval=0.2)

    # a failover: the server turns into a read-only replica for a while, then leads again
    client.replicaof("127.0.0.1", REFUSED_PORT)  # a leader that never answers
    third = [str(uuid.uuid4()) for _ in range(5)]
    time.sleep(2)  # the scenario: 2 s as a read-only replica
    client.replicaof("NO", "ONE")
    push(client, [e for t in third for e in story(t, time.time())])
    wait_for(lambda: recorded(third) == 5, timeout=60, interval=0.2)

    # a server that stops answering (a hung host, a dropped route): reads time out
    own_redis.process.send_signal(signal.SIGSTOP)
    time.sleep(7)  # the scenario: 7 s without answers, past the recorder's socket timeout
    own_redis.process.send_signal(signal.SIGCONT)
    fourth = [str(uuid.uuid4()) for _ in range(5)]
    push(client, [e for t in fourth for e in story(t, time.time())])
    wait_for(lambda: recorded(fourth) == 5, timeout=60, interval=0.2)

    # FLUSHDB while events flow: what is pushed after the flush is recorded
    pushed: list[str] = []
    flowing = threading.Event()
    flowing.set()

    def pusher() -> None:
        while flowing.is_set():
            task_id = str(uuid.uuid4())
            push(client, story(task_id, time.time()))
            pushed.append(task_id)
            time.sleep(0.01)  # the pace of the flow

    thread = threading.Thread(target=pusher, daemon=True)
    thread.start()
    wait_for(lambda: len(pushed) >= 20, timeout=30)
    client.flushdb()
    after_flush = len(pushed)
    wait_for(lambda: len(pushed) >= after_flush + 50, timeout=30)
    flowing.clear()
    thread.join(10)
    later = pushed[after_flush + 1 :]
    assert len(later) > 20
    wait_for(lambda: recorded(later) == len(later), timeout=60, interval=0.2)
    wait_for(lambda: client.xpending(STREAM, GROUP)["pending"] == 0, timeout=30)

    assert recorder.process.poll() is None, recorder.log()
    log = recorder.log()
    # one line per outage (the restart, the read-only spell, the hang), no traceback storm
    assert log.count("Redis unavailable") == 3, log
    assert "ReadOnlyError" in log and "TimeoutError" in log, log
    assert log.count("Redis back after") == 3, log
    assert "Traceback" not in log, log
    print(log)
    client.close()


def bad_values(task_ids: dict[str, str]) -> list[dict]:
    """Events with an out-of-range id, an over-long task id and NUL bytes, and a poison one."""
    t0 = time.time()
    huge_source = story(task_ids["huge"], t0)
    huge_source[0]["fields"]["source_id"] = 2**70
    long_id = story(task_ids["long"], t0)
    nul = story(task_ids["nul"], t0)
    nul[2]["kind"] = ev.FAILED
    nul[2]["fields"] = {"error_message": "bad\x00byte", "traceback": "T\x00B", "worker": "w\x00@h"}
    nul[0]["fields"]["args"] = ["a\x00b", {"k\x00": "v"}]
    nul[0]["fields"]["queue"] = "q" * 300
    poison = {"kind": ev.STARTED, "task_id": task_ids["poison"], "ts": "soon", "attempt": 0}
    return [*huge_source, *long_id, *nul, poison]


def test_poison_is_quarantined_and_odd_values_are_bounded(
    app: Flask, redis_client: redis.Redis
) -> None:
    good = [str(uuid.uuid4()) for _ in range(30)]
    odd = {"huge": str(uuid.uuid4()), "long": "L" * 100, "nul": str(uuid.uuid4())}
    odd["poison"] = str(uuid.uuid4())
    events = [e for t in good[:15] for e in story(t, time.time())]
    events += bad_values(odd)
    events += [e for t in good[15:] for e in story(t, time.time())]
    push(redis_client, events)
    # the poison one shares an entry with a good event
    spare = str(uuid.uuid4())
    redis_client.xadd(STREAM, {"e": json.dumps([bad_values(odd)[-1], *story(spare, time.time())])})
    redis_client.xadd(STREAM, {"e": b"{not json"})
    recorder = drain(app, redis_client)

    assert recorded([*good, spare]) == 31
    huge = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == odd["huge"]))
    assert huge.status == TaskStatus.SUCCESS and huge.source_id is None
    [long_row] = db.session.scalars(
        select(TaskExecution).where(TaskExecution.task_id.like("LLLL%"))
    ).all()
    assert len(long_row.task_id) == 64 and CUT_MARKER in long_row.task_id
    assert long_row.status == TaskStatus.SUCCESS
    nul = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == odd["nul"]))
    assert nul.status == TaskStatus.FAILURE and nul.error_message == "badbyte"
    assert nul.traceback == "TB" and nul.worker == "w@h"
    assert nul.args == ["ab", {"k": "v"}] and len(nul.queue) == 100
    assert nul.queue.endswith(CUT_MARKER)

    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    assert redis_client.xlen(STREAM) == 0  # everything acknowledged
    assert recorder.stats["quarantined"] == quarantine.count(redis_client) == 3
    entries, _next = quarantine.newest(redis_client)
    # newest first: the poison event twice (two entries), the entry that is not JSON
    assert [e.error_type for e in entries] == ["ValueError", "ValueError", "JSONDecodeError"]
    assert entries[0].task_id == entries[1].task_id == odd["poison"] and entries[0].entry_id
    assert "soon" in entries[0].event and "not json" in entries[2].event


def test_the_database_refusing_an_event_quarantines_only_that_event(
    app: Flask, redis_client: redis.Redis
) -> None:
    """Events that skipped the bounds (written by anything but our worker) reach the database
    as they are: SQLite and PostgreSQL refuse an id past 64 bits, PostgreSQL NUL bytes and
    over-long ids too. Only the refused event is quarantined."""
    recorder = Recorder(app=app, redis_client=redis_client)
    good = [str(uuid.uuid4()) for _ in range(5)]
    refused = str(uuid.uuid4())
    events = [e for t in good for e in story(t, time.time())]
    unbounded = story(refused, time.time())
    unbounded[0]["fields"]["source_id"] = 2**70
    if db.engine.dialect.name == "postgresql":
        unbounded[2]["fields"]["worker"] = "w\x00" + "x" * 300
    events[3:3] = unbounded
    alerts = recorder._apply([Decoded(b"1-0", event, event) for event in events])
    assert alerts == []
    assert recorded(good) == 5
    assert recorder.stats["quarantined"] == quarantine.count(redis_client) >= 1
    entries, _ = quarantine.newest(redis_client)
    assert {entry.task_id for entry in entries} == {refused}


def test_a_batch_applied_again_changes_nothing(app: Flask, redis_client: redis.Redis) -> None:
    """A batch committed but not acknowledged (Redis failed in between) is applied again."""
    app.config["CRITICAL_TASK_NAMES"] = "bench.noop"
    task_ids = [str(uuid.uuid4()) for _ in range(10)]
    batch = [e for t in task_ids for e in story(t, time.time())]
    for event in batch[2::3]:
        event["kind"], event["fields"] = ev.FAILED, {"error_message": "boom"}
    push(redis_client, batch)
    drain(app, redis_client)
    snapshot = (counts(), db.session.scalar(select(func.count()).select_from(Alert)))
    statistics = db.session.execute(select(ExecutionHourly)).scalars().all()
    totals = sorted((s.task_name, s.success, s.failure) for s in statistics)
    push(redis_client, batch)
    drain(app, redis_client)
    assert (counts(), db.session.scalar(select(func.count()).select_from(Alert))) == snapshot
    assert snapshot == ({"failure": 10}, 10)
    db.session.expire_all()
    statistics = db.session.execute(select(ExecutionHourly)).scalars().all()
    assert sorted((s.task_name, s.success, s.failure) for s in statistics) == totals


def test_bounds_keep_good_events_as_they_are() -> None:
    event = story(str(uuid.uuid4()), time.time())[0]
    assert bound_event(event) is event
    event["fields"]["source_id"] = -(2**40)
    event["before"] = {"task_id": "x" * 65, "attempt": 10**12, "fields": {"arg1": "\x00" * 3}}
    bounded = bound_event(event)
    assert bounded["fields"]["source_id"] is None and event["fields"]["source_id"] == -(2**40)
    assert len(bounded["before"]["task_id"]) == 64 and bounded["before"]["fields"]["arg1"] == ""
    assert 0 < bounded["before"]["attempt"] * 4 < 2**31
    # two long ids with the same beginning stay two executions
    assert (
        bound_event({"task_id": "a" * 70})["task_id"]
        != bound_event({"task_id": "a" * 71})["task_id"]
    )


@pytest.fixture
def engine(start_worker, start_recorder) -> dict:
    return {"worker": start_worker(concurrency=1), "recorder": start_recorder()}


def test_a_worker_bounds_odd_arguments_and_errors(app: Flask, engine) -> None:
    """Real tasks with odd values are recorded (on PostgreSQL too), none quarantined."""
    huge = send(app, "tests.flaky", f"k-{uuid.uuid4()}", 0, kwargs={"source_id": 2**70})
    nul = send(app, "tests.fail", "boom\x00here")
    long_id = send(app, "tests.add", 1, 2, task_id="T" * 90)
    assert wait_status(huge, "success").source_id is None
    assert wait_status(nul, "failure").error_message == "ValueError: boomhere"
    long_row = wait_for(
        lambda: db.session.scalar(
            select(TaskExecution).where(
                TaskExecution.task_id.like("TTTT%"), TaskExecution.status == TaskStatus.SUCCESS
            )
        ),
        timeout=60,
        interval=0.3,
    )
    assert long_row.result == 3 and len(long_row.task_id) == 64 and long_id.startswith("TTTT")
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    assert quarantine.count(client) == 0


class LateWebhook:
    """A webhook that refuses connections until ``start`` is called: its socket is bound at
    once (port 0, so the URL is known and the port stays ours) and listens only from ``start``
    (connections to a bound socket that does not listen are refused)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hook"
        self.received: list[dict] = []
        self.server: HTTPServer | None = None

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.received.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(self.socket.getsockname(), Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = self.socket
        self.server.server_activate()  # listen
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        else:
            self.socket.close()


@pytest.fixture
def late_webhook() -> Iterator[LateWebhook]:
    hook = LateWebhook()
    yield hook
    hook.stop()


def outbox_env(url: str) -> dict[str, str]:
    return {
        "ALERT_WEBHOOK_URL": url,
        "CRITICAL_TASK_NAMES": "bench.noop",
        "ALERT_NOTIFY_GRACE_SECONDS": "1",
        "ALERT_NOTIFY_RETRY_SECONDS": "1",
        "WATCH_IN_RECORDER": "0",
    }


def alert_row(alert_id: int) -> Alert:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(Alert, alert_id)


def test_an_alert_is_notified_once_after_its_webhook_comes_back(
    app: Flask, redis_client: redis.Redis, start_worker, start_recorder, late_webhook
) -> None:
    env = outbox_env(late_webhook.url)
    start_worker(queues="monitoring", **env)
    start_recorder(**env)
    task_id = str(uuid.uuid4())
    failing = story(task_id, time.time())
    failing[2]["kind"], failing[2]["fields"] = ev.FAILED, {"error_message": "boom"}
    push(redis_client, failing)
    alert_id = wait_for(
        lambda: (
            db.session.scalar(select(Alert.id).where(Alert.task_id == task_id))
            or db.session.rollback()
        ),
        timeout=60,
        interval=0.3,
    )
    # the webhook refuses: the attempts fail and are retried later
    wait_for(lambda: (alert_row(alert_id).notify_attempts or 0) >= 2, timeout=90, interval=0.5)
    assert alert_row(alert_id).notified_at is None and alert_row(alert_id).notify_error
    late_webhook.start()
    wait_for(lambda: alert_row(alert_id).notified_at is not None, timeout=90, interval=0.5)
    # Nothing to wait for: proving no second send takes a quiet period of more outbox passes
    # (every 5 s) than the one that sent it.
    time.sleep(8)
    assert [body["id"] for body in late_webhook.received] == [alert_id]
    assert alert_row(alert_id).notify_claimed_at is None


def test_an_alert_committed_without_dispatch_is_notified_by_the_outbox(
    app: Flask, start_worker, start_recorder, webhook
) -> None:
    """What a crash between the alert's commit and its dispatch leaves behind."""
    env = outbox_env(webhook.url)
    alert = factories.alert(title="Lost dispatch")
    old = factories.alert(severity="error", title="Seen already", acknowledged_at=utcnow())
    db.session.commit()
    start_worker(queues="monitoring", **env)
    start_recorder(**env)
    wait_for(lambda: alert_row(alert.id).notified_at is not None, timeout=90, interval=0.5)
    time.sleep(8)  # a quiet period of outbox passes (every 5 s): no second send
    assert [body["title"] for body in webhook.received] == ["Lost dispatch"]
    assert alert_row(old.id).notified_at is None  # acknowledged: nobody needs telling


def test_a_claimed_alert_is_not_sent_twice(app: Flask, webhook) -> None:
    app.config["ALERT_WEBHOOK_URL"] = webhook.url
    alert = factories.alert(kind="dead_letter", severity="error", title="Once")
    db.session.commit()
    assert claim(alert.id) and not claim(alert.id)  # a live sender holds it
    assert notify(alert.id)["skipped"] and webhook.received == []
    db.session.execute(update(Alert).values(notify_claimed_at=utcnow() - timedelta(hours=1)))
    db.session.commit()  # that sender died: its claim is stale
    assert notify(alert.id)["sent"] == ["webhook"]
    assert notify(alert.id)["skipped"] and len(webhook.received) == 1


def test_events_of_any_shape_never_stop_the_recorder(app: Flask, redis_client: redis.Redis) -> None:
    t0 = time.time()
    good = [str(uuid.uuid4()) for _ in range(4)]
    hostile = [
        {"kind": ev.STARTED, "task_id": ["not", "a", "string"], "ts": t0},
        {"kind": ev.STARTED, "task_id": str(uuid.uuid4()), "ts": t0, "fields": [1, 2]},
        {**story(str(uuid.uuid4()), t0)[2], "before": 5},
        {"kind": ev.SUCCEEDED, "task_id": str(uuid.uuid4()), "ts": 1e300, "attempt": "x"},
        7,
        {"kind": ev.PUBLISHED, "task_id": str(uuid.uuid4()), "ts": t0, "fields": {"args": "["}},
    ]
    deep: object = 1
    for _ in range(900):
        deep = [deep]
    deep_story = story(str(uuid.uuid4()), t0)
    deep_story[0]["fields"]["args"] = deep
    redis_client.xadd(STREAM, {"e": json.dumps([*story(good[0], t0), *hostile])})
    redis_client.xadd(STREAM, {"e": "[" * 100_000})
    redis_client.xadd(STREAM, {"x": "no e field"})
    redis_client.xadd(STREAM, {"e": json.dumps(deep_story)})
    push(redis_client, [e for t in good[1:] for e in story(t, t0)])
    recorder = drain(app, redis_client)
    assert recorded(good) == 4
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    assert recorder.stats["quarantined"] == quarantine.count(redis_client) >= 6


def test_a_read_only_database_is_an_outage_not_poison(
    app: Flask, redis_client: redis.Redis
) -> None:
    """A PostgreSQL replica during a failover refuses writes (SQLSTATE 25006): the events wait,
    none is quarantined, and they are recorded once the database takes writes again."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("read-only transactions are PostgreSQL's")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def set_read_only(on: bool) -> None:
        setting = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{url.database}" {setting}'))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": url.database},
            )

    recorder = Recorder(app=app, redis_client=redis_client)
    stop = threading.Event()
    task_ids = [str(uuid.uuid4()) for _ in range(10)]
    db.session.remove()
    set_read_only(True)
    try:
        push(redis_client, [e for t in task_ids for e in story(t, time.time())])
        thread = threading.Thread(target=recorder.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        wait_for(lambda: recorder.db_outage.failures >= 3, timeout=60, interval=0.2)
        assert recorder.stats["events"] == 0 and quarantine.count(redis_client) == 0
    finally:
        set_read_only(False)
    wait_for(lambda: recorded(task_ids) == 10, timeout=60, interval=0.5)
    stop.set()
    thread.join(10)
    assert quarantine.count(redis_client) == 0
    admin.dispose()
