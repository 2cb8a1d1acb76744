"""Runs kept by the recorder: membership, planned steps, status rules, order independence."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import PipelineRun
from app.tracking import events as ev
from app.tracking.apply import apply_batch

NAMES = ["pipe.retrieve", "pipe.process", "pipe.aggregate", "pipe.match"]


def event(kind: str, task_id: str, ts: float, attempt: int = 0, **fields: Any) -> dict:
    found = {"kind": kind, "task_id": task_id, "ts": ts, "attempt": attempt, "fields": fields}
    if kind != ev.PUBLISHED:
        found["run_id"] = f"{task_id}-{attempt}"
    return found


def chain_story(t0: float, fail_at: int | None = None, schedule_id: int | None = 7):
    """Events of a 4-step chain sent by a schedule; the step at ``fail_at`` fails for good."""
    ids = [str(uuid.uuid4()) for _ in NAMES]
    root = ids[0]
    planned = [
        {"task_id": ids[i], "task_name": NAMES[i], "args": [i], "kwargs": {}, "immutable": True,
         "replayable": True}
        for i in range(1, 4)
    ]  # fmt: skip
    events = []
    for i, task_id in enumerate(ids):
        ts = t0 + i
        fields = {"task_name": NAMES[i], "queue": "default", "root_id": root,
                  "parent_id": ids[i - 1] if i else None, "args": [i], "kwargs": {}}  # fmt: skip
        if i == 0:
            fields |= {"schedule_id": schedule_id, "run_kind": "scheduled"}
        events.append(event(ev.PUBLISHED, task_id, ts, planned=planned[i:], **fields))
        events.append(event(ev.STARTED, task_id, ts + 0.1, worker="w@h"))
        if i == fail_at:
            events.append(event(ev.FAILED, task_id, ts + 0.5, error_message="boom",
                                is_dead_letter=True))  # fmt: skip
            break
        events.append(event(ev.SUCCEEDED, task_id, ts + 0.5, result={"ok": i}))
    return ids, events


def run_of(root: str) -> PipelineRun:
    db.session.rollback()
    return db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == root))


def apply(events: list[dict]) -> list[int]:
    alerts = apply_batch(events)
    db.session.commit()
    return alerts


def test_a_chain_that_succeeds_is_one_successful_run(app: Flask) -> None:
    ids, events = chain_story(time.time())
    apply(events)
    run = run_of(ids[0])
    assert run.status == "success" and run.steps_total == 4 and run.steps_succeeded == 4
    assert run.schedule_id == 7 and run.task_name == NAMES[0] and run.finished_at is not None
    assert {s.task_id for s in run.steps} == set(ids)


def test_a_failed_first_step_leaves_the_rest_not_run(app: Flask) -> None:
    ids, events = chain_story(time.time(), fail_at=0)
    apply(events)
    run = run_of(ids[0])
    assert run.status == "failure" and run.steps_not_run == 3 and run.steps_failed == 1
    assert run.failed_step_task_id == ids[0] and run.error_message == "boom"
    assert run.finished_at is not None
    assert [s.origin for s in sorted(run.steps, key=lambda s: ids.index(s.task_id))] == [
        "root", "chain", "chain", "chain"]  # fmt: skip


def test_a_step_still_retrying_keeps_the_run_running(app: Flask) -> None:
    ids, events = chain_story(time.time(), fail_at=1)
    events[-1] = event(ev.RETRIED, ids[1], events[-1]["ts"], error_message="later", eta=None)
    apply(events)
    run = run_of(ids[0])
    assert run.status == "running" and run.finished_at is None and run.steps_running == 3


def test_every_arrival_order_gives_the_same_run(app: Flask) -> None:
    t0 = time.time()
    ids, events = chain_story(t0, fail_at=2)
    apply(events)
    expected = _shape(run_of(ids[0]))
    rng = random.Random(5)
    for trial in range(12):
        db.session.execute(PipelineRun.__table__.delete())
        db.session.execute(db.metadata.tables["task_executions"].delete())
        db.session.commit()
        shuffled = events + rng.sample(events, 3)  # some twice
        rng.shuffle(shuffled)
        split = rng.randrange(1, len(shuffled))
        for part in (shuffled[:split], shuffled[split:]):
            apply(part)
        assert _shape(run_of(ids[0])) == expected, trial


def _shape(run: PipelineRun) -> tuple:
    return (run.status, run.steps_total, run.steps_succeeded, run.steps_failed,
            run.steps_not_run, run.failed_step_task_id, run.error_message,
            sorted((s.task_id, s.origin, s.after_task_id) for s in run.steps))  # fmt: skip
