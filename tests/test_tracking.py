"""Tracking end to end: real workers, a real recorder, real Redis and database."""

from __future__ import annotations

import json
import signal
import uuid

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app.errors import Conflict
from app.extensions import db
from app.models import Alert, DeadLetter, TaskExecution, TaskStatus
from app.tracking.capture import REDACTED
from app.tracking.deadletters import requeue
from app.tracking.retry import retry_execution
from tests import factories
from tests.conftest import Webhook
from tests.support import wait_for


def execution(task_id: str) -> TaskExecution | None:
    db.session.rollback()
    db.session.expire_all()
    return db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))


def wait_status(task_id: str, *statuses: str, timeout: float = 60) -> TaskExecution:
    """Wait for the status, and for the publish event too (it may be recorded after the end)."""

    def reached() -> TaskExecution | None:
        row = execution(task_id)
        if row is None or row.status.value not in statuses or row.args is None:
            return None
        return row

    return wait_for(reached, timeout=timeout, interval=0.2)


def attempts(task_id: str) -> list[dict]:
    return execution(task_id).attempts or []


def send(app: Flask, name: str, *args, **options) -> str:
    kwargs = options.pop("kwargs", {})
    return app.extensions["celery"].send_task(name, args=args, kwargs=kwargs, **options).id


@pytest.fixture
def engine(start_worker, start_recorder) -> dict:
    return {"worker": start_worker(concurrency=2), "recorder": start_recorder()}


def test_success_is_recorded_with_timing_arguments_and_resources(app: Flask, engine) -> None:
    task_id = send(app, "tests.add", 2, 3)
    row = wait_status(task_id, "success")
    assert row.result == 5
    assert row.args == [2, 3] and row.kwargs == {} and row.arg1 == "2"
    assert row.task_name == "tests.add" and row.queue == "default"
    assert row.worker == engine["worker"].hostname
    assert row.created_at <= row.started_at <= row.completed_at
    assert row.duration_seconds is not None and row.duration_seconds >= 0
    assert row.cpu_seconds is not None and row.peak_memory_bytes > 1024 * 1024
    [attempt] = attempts(task_id)
    assert attempt["status"] == "success" and attempt["worker"] == row.worker


def test_failure_keeps_message_and_traceback(app: Flask, engine) -> None:
    task_id = send(app, "tests.fail", "<b>boom</b>")
    row = wait_status(task_id, "failure")
    assert row.error_message == "ValueError: <b>boom</b>"
    assert "Traceback" in row.traceback and "raise ValueError" in row.traceback
    assert not row.is_dead_letter
    assert row.completed_at is not None


def test_retries_then_success_keep_an_attempt_timeline(app: Flask, engine) -> None:
    task_id = send(app, "tests.flaky", f"k-{uuid.uuid4()}", 2, kwargs={})
    row = wait_status(task_id, "success")
    assert row.retry_count == 2 and row.result == "fetched"
    assert row.max_retries == 6
    assert row.task_type is not None and row.task_type.name == "retrieval"
    queue_of = row.queue
    assert queue_of == "default"  # sent by a name outside the routes: the default queue
    timeline = attempts(task_id)
    assert [a["attempt"] for a in timeline] == [0, 1, 2]
    assert [a["status"] for a in timeline] == ["retry", "retry", "success"]
    assert all("ConnectionError" in a["error_message"] for a in timeline[:2])
    # backoff_base 0.4 s: 0.4 s then 0.8 s, each within 25%, so the second wait is the longer.
    first, second = (a["retry_delay_seconds"] for a in timeline[:2])
    assert 0.3 <= first <= 0.5 and 0.6 <= second <= 1.0
    assert all(a["started_at"] < a["completed_at"] for a in timeline)


def test_exhausted_retries_dead_letter_and_requeue(app: Flask, engine) -> None:
    task_id = send(app, "tests.unreachable", "http://127.0.0.1:9/")
    row = wait_status(task_id, "failure")
    assert row.is_dead_letter and row.retry_count == 2
    assert "cannot reach" in row.error_message
    letter = db.session.scalar(select(DeadLetter).where(DeadLetter.task_id == task_id))
    assert letter.task_name == "tests.unreachable" and letter.args == ["http://127.0.0.1:9/"]
    alert = wait_for(lambda: db.session.scalar(select(Alert).where(Alert.task_id == task_id)))
    assert alert.kind == "dead_letter"

    new_id = requeue(letter.id)
    db.session.commit()
    again = wait_status(new_id, "failure")
    assert again.retry_of == task_id
    with pytest.raises(Conflict):
        requeue(letter.id)


def test_manual_retry_creates_a_linked_execution(app: Flask, engine) -> None:
    task_id = send(app, "tests.fail", "once")
    wait_status(task_id, "failure")
    new_id = retry_execution(task_id)
    retried = wait_status(new_id, "failure")
    assert retried.retry_of == task_id and retried.args == ["once"]
    ok_id = send(app, "tests.add", 1, 1)
    wait_status(ok_id, "success")
    with pytest.raises(Conflict, match="Only failed, revoked or lost"):
        retry_execution(ok_id)


def test_processing_does_not_retry_invalid_data(app: Flask, engine) -> None:
    task_id = send(app, "tests.invalid_data")
    row = wait_status(task_id, "failure")
    assert row.retry_count == 0 and "not a number" in row.error_message
    assert row.task_type.name == "processing" and not row.is_dead_letter


def test_revoked_before_start(app: Flask, start_worker, start_recorder) -> None:
    start_recorder()
    worker = start_worker(concurrency=1)
    blocker = send(app, "tests.sleep", 3)
    wait_status(blocker, "started")
    waiting = send(app, "tests.add", 1, 2)
    app.extensions["celery"].control.revoke(waiting)
    row = wait_status(waiting, "revoked")
    assert row.started_at is None and row.completed_at is not None
    assert attempts(waiting) == []
    # Celery keeps no results (tracking does): a revoke must not warn about a missing backend.
    assert "Failed to mark" not in worker.log() and "No result backend" not in worker.log()


def test_revoked_while_running_with_terminate(app: Flask, engine) -> None:
    task_id = send(app, "tests.sleep", 60)
    wait_status(task_id, "started")
    app.extensions["celery"].control.revoke(task_id, terminate=True, signal="SIGKILL")
    row = wait_status(task_id, "revoked")
    assert row.error_message == "terminated"
    [attempt] = attempts(task_id)
    assert attempt["status"] == "revoked"


def test_logs_are_captured_at_info_and_above(app: Flask, engine) -> None:
    task_id = send(app, "tests.chatty", 3)
    row = wait_status(task_id, "success")
    messages = [record["message"] for record in row.logs]
    assert "task logger says hello" in messages
    assert "root-propagating logger warns" in messages
    assert "line 2" in messages and "debug is not kept" not in messages
    levels = {record["message"]: record["level"] for record in row.logs}
    assert levels["root-propagating logger warns"] == "WARNING"


def test_logs_are_capped_oldest_first(app: Flask, engine) -> None:
    task_id = send(app, "tests.chatty", 500)
    row = wait_status(task_id, "success")
    assert len(row.logs) == 200
    assert row.logs[-1]["message"] == "line 499"


def test_cpu_and_peak_memory_per_attempt(app: Flask, engine) -> None:
    heavy = send(app, "tests.burn", 0.4, 80)
    row = wait_status(heavy, "success")
    assert row.cpu_seconds >= 0.3
    assert row.peak_memory_bytes >= 80 * 1024 * 1024
    [attempt] = attempts(heavy)
    assert attempt["cpu_seconds"] == row.cpu_seconds
    assert attempt["peak_memory_bytes"] == row.peak_memory_bytes


def test_peak_memory_is_reset_between_attempts() -> None:
    from app.tracking.capture import AttemptResources

    resources = AttemptResources()
    resources.start()
    block = bytearray(64 * 1024 * 1024)
    for index in range(0, len(block), 4096):
        block[index] = 1
    big = resources.stop()["peak_memory_bytes"]
    del block
    resources.start()
    assert resources.stop()["peak_memory_bytes"] < big - 32 * 1024 * 1024


def test_secrets_are_redacted_and_block_exact_replay(app: Flask, engine) -> None:
    task_id = send(
        app,
        "tests.with_secrets",
        {"token": "abc", "rows": [1]},
        kwargs={"password": "hunter2", "api_key": "k-123"},
    )
    row = wait_status(task_id, "success")
    assert row.kwargs == {"password": REDACTED, "api_key": REDACTED}
    assert row.args == [{"token": REDACTED, "rows": [1]}]
    assert "hunter2" not in json.dumps([row.args, row.kwargs])
    assert not row.replayable


def test_large_results_are_cut_with_a_marker(app: Flask, engine) -> None:
    row = wait_status(send(app, "tests.big_result", 200_000), "success")
    assert row.result["_truncated"] is True and row.result["size_bytes"] > 200_000


def test_helper_api_links_source(app: Flask, engine) -> None:

    source = factories.source(name="IDMC")
    db.session.commit()
    task_id = send(app, "tests.annotated", source.id)
    row = wait_status(task_id, "success")
    assert row.source_id == source.id and row.task_type.name == "retrieval"


def test_unknown_source_id_does_not_block_recording(app: Flask, engine) -> None:
    task_id = send(app, "tests.flaky", f"k-{uuid.uuid4()}", 0, kwargs={"source_id": 987654})
    row = wait_status(task_id, "success")
    assert row.source_id is None


def test_critical_failure_escalates_to_the_webhook(
    app: Flask, start_worker, start_recorder, webhook: Webhook
) -> None:
    env = {"ALERT_WEBHOOK_URL": webhook.url, "CRITICAL_TASK_NAMES": "tests.fail"}
    start_worker(concurrency=1, **env)
    start_recorder(**env)
    task_id = send(app, "tests.fail", "IDMC down")
    wait_status(task_id, "failure")
    [payload] = wait_for(lambda: webhook.received, timeout=60)
    assert payload["kind"] == "critical_failure" and payload["task_id"] == task_id
    assert payload["message"] == "ValueError: IDMC down"
    alert = wait_for(lambda: execution(task_id) and db.session.scalar(select(Alert)))
    wait_for(lambda: (db.session.expire_all(), db.session.get(Alert, alert.id).notified_at)[1])


def test_failing_notifier_never_breaks_the_worker(app: Flask, start_worker, start_recorder) -> None:
    env = {"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/nothing", "CRITICAL_TASK_NAMES": "tests.fail"}
    start_worker(concurrency=1, **env)
    start_recorder(**env)
    wait_status(send(app, "tests.fail", "x"), "failure")

    def notify_done() -> TaskExecution | None:
        row = db.session.scalar(
            select(TaskExecution).where(
                TaskExecution.task_name == "task_monitoring.tasks.notify_alert"
            )
        )
        return row if row is not None and row.status == TaskStatus.SUCCESS else None

    wait_for(lambda: (db.session.expire_all(), notify_done())[1], timeout=60)
    alert = db.session.scalar(select(Alert))
    assert "webhook" in alert.notify_error
    assert wait_status(send(app, "tests.add", 2, 2), "success").result == 4


def test_worker_killed_mid_task_is_redelivered(app: Flask, start_worker, start_recorder) -> None:
    env = {
        "BROKER_VISIBILITY_TIMEOUT": "4",
        "BROKER_RESTORE_INTERVAL": "1",
        "TASK_TIME_LIMIT": "120",
    }
    start_recorder()
    first = start_worker(concurrency=1, **env)
    task_id = send(app, "tests.sleep", 2, "redelivery")
    wait_status(task_id, "started")
    first.kill_all()
    start_worker(concurrency=1, **env)
    row = wait_status(task_id, "success", timeout=90)
    assert row.result == 2
    runs = attempts(task_id)
    assert len(runs) == 2 and runs[0]["completed_at"] is None and runs[1]["status"] == "success"
    assert runs[0]["attempt"] == runs[1]["attempt"] == 0


def test_worker_heartbeat_is_visible(app: Flask, start_worker, redis_client: redis.Redis) -> None:
    from app.tracking.heartbeats import live_workers

    worker = start_worker(concurrency=2)
    [info] = wait_for(lambda: live_workers(redis_client))
    assert info["hostname"] == worker.hostname and info["concurrency"] == 2
    assert "default" in info["queues"] and info["active"] == 0
    worker.stop()
    assert live_workers(redis_client) == []


def test_orphaned_execution_is_flagged(app: Flask, redis_client: redis.Redis) -> None:
    from datetime import timedelta

    from app.models.types import utcnow
    from app.tracking.orphans import flag_orphans

    started = {"task_name": None, "status": TaskStatus.STARTED, "worker": "gone@nowhere"}
    lost = factories.execution(**started, started_at=utcnow() - timedelta(minutes=5))
    fresh = factories.execution(**started, started_at=utcnow())
    db.session.commit()
    assert flag_orphans(redis_client) == 1
    db.session.commit()
    assert execution(lost.task_id).lost_suspect and not execution(fresh.task_id).lost_suspect


def test_pending_execution_whose_message_is_gone_is_flagged_lost(
    app: Flask, redis_client: redis.Redis, client, operator: str
) -> None:
    """A queued message deleted from Redis (a restart without persistence, a flush) leaves its
    execution pending forever; two scans flag it lost (alerted, retryable), never one whose
    message is still queued, and never while older tracking events wait to be recorded."""
    from datetime import timedelta

    from app.models.types import utcnow
    from app.tracking.emitter import STREAM
    from app.tracking.orphans import flag_lost_pending
    from app.tracking.recorder import GROUP
    from app.tracking.retry import is_retryable

    celery = app.extensions["celery"]
    queued, gone = str(uuid.uuid4()), str(uuid.uuid4())
    celery.send_task("tests.add", args=[1, 2], task_id=queued, queue="default")
    long_ago = utcnow() - timedelta(minutes=30)
    for task_id in (queued, gone):
        factories.execution(task_id=task_id, task_name="tests.add", status=TaskStatus.PENDING,
                            queue="default", args=[1, 2], created_at=long_ago)  # fmt: skip
    db.session.commit()
    redis_client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    redis_client.xadd(STREAM, {"e": "{}"})  # an event no recorder has read yet

    assert flag_lost_pending(redis_client, 60, GROUP) == []  # noted, not flagged: one scan
    assert flag_lost_pending(redis_client, 60, GROUP) == []  # the recorders are behind

    def record_everything() -> None:  # what a recorder does; the send's own event is there too
        for _stream, entries in redis_client.xreadgroup(GROUP, "test", {STREAM: ">"}) or []:
            redis_client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])

    record_everything()
    alerts = flag_lost_pending(redis_client, 60, GROUP)
    db.session.commit()
    assert len(alerts) == 1
    alert = db.session.get(Alert, alerts[0])
    assert alert.kind == "lost_execution" and alert.task_id == gone
    lost = execution(gone)
    assert lost.lost_suspect and lost.status == TaskStatus.PENDING and is_retryable(lost)
    assert not execution(queued).lost_suspect
    page = client.get(f"/tasks/executions/{gone}/").text
    assert "lost: not in the broker" in page and ">Retry<" in page
    listing = client.get("/tasks/executions/?status=pending").text
    assert listing.count("lost: not in the broker") == 1

    redis_client.delete("default")  # the other message is lost too
    assert flag_lost_pending(redis_client, 60, GROUP) == []
    record_everything()
    assert len(flag_lost_pending(redis_client, 60, GROUP)) == 1
    db.session.commit()
    assert execution(queued).lost_suspect
    assert flag_lost_pending(redis_client, 60, GROUP) == []  # flagged once, alerted once

    new_id = retry_execution(gone)
    assert new_id != gone and redis_client.llen("default") == 1


def test_recorder_sigterm_stops_cleanly(app: Flask, start_recorder) -> None:
    recorder = start_recorder()
    recorder.kill(signal.SIGTERM)
    assert "recorder stopped" in recorder.log()
