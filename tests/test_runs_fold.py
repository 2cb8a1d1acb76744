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


def fan_out_story(t0: float) -> tuple[str, list[str], list[dict]]:
    """A pipeline task that sends two chains of two steps (one failing at its first step)."""
    root = str(uuid.uuid4())
    chains = [[str(uuid.uuid4()), str(uuid.uuid4())] for _ in range(2)]
    events = [
        event(ev.PUBLISHED, root, t0, task_name="pipe.full", root_id=root, schedule_id=3,
              run_kind="scheduled", args=[], kwargs={}),
        event(ev.STARTED, root, t0 + 0.1),
    ]  # fmt: skip
    for n, (first, second) in enumerate(chains):
        planned = [{"task_id": second, "task_name": NAMES[1], "args": [], "kwargs": {},
                    "immutable": False, "replayable": True}]  # fmt: skip
        events.append(event(ev.PUBLISHED, first, t0 + 0.2, task_name=NAMES[0], root_id=root,
                            parent_id=root, planned=planned, args=[n], kwargs={}))  # fmt: skip
        events.append(event(ev.STARTED, first, t0 + 1))
        if n == 0:
            events.append(event(ev.SUCCEEDED, first, t0 + 2))
            events.append(event(ev.PUBLISHED, second, t0 + 2, task_name=NAMES[1], root_id=root,
                                parent_id=first, args=[{}], kwargs={}))  # fmt: skip
            events.append(event(ev.STARTED, second, t0 + 3))
            events.append(event(ev.SUCCEEDED, second, t0 + 4))
        else:
            events.append(event(ev.FAILED, first, t0 + 2, error_message="HTTP 503"))
    children = [{"task_id": c[0], "task_name": NAMES[0]} for c in chains]
    events.append(event(ev.SUCCEEDED, root, t0 + 0.3, children=children))
    return root, [root, *chains[0], *chains[1]], events


def test_a_task_that_only_sends_work_never_makes_the_run_green(app: Flask) -> None:
    root, ids, events = fan_out_story(time.time())
    root_events = [e for e in events if e["task_id"] == root]
    apply(root_events)  # the sender is done, its chains not recorded yet
    run = run_of(root)
    assert run.status == "running" and run.steps_total == 3 and run.finished_at is None
    apply([e for e in events if e["task_id"] != root])
    run = run_of(root)
    assert run.status == "failure" and run.failed_step_task_id == ids[3]
    assert (run.steps_total, run.steps_succeeded, run.steps_failed, run.steps_not_run) == (
        5,
        3,
        1,
        1,
    )


def test_every_arrival_order_of_a_fan_out_gives_the_same_run(app: Flask) -> None:
    root, _ids, events = fan_out_story(time.time())
    apply(events)
    expected = _shape(run_of(root))
    rng = random.Random(11)
    for trial in range(12):
        db.session.execute(PipelineRun.__table__.delete())
        db.session.execute(db.metadata.tables["task_executions"].delete())
        db.session.commit()
        shuffled = events + rng.sample(events, 4)
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), 2))
        for part in (shuffled[: cuts[0]], shuffled[cuts[0] : cuts[1]], shuffled[cuts[1] :]):
            apply(part)
        assert _shape(run_of(root)) == expected, trial


def test_a_lone_task_is_no_run_and_a_critical_run_raises_one_alert(app: Flask) -> None:
    from app.models import Alert

    lone = str(uuid.uuid4())
    apply([event(ev.PUBLISHED, lone, 1.0, task_name="pipe.x", args=[], kwargs={}),
           event(ev.FAILED, lone, 2.0, error_message="no")])  # fmt: skip
    assert db.session.scalar(select(PipelineRun)) is None
    app.config["CRITICAL_TASK_NAMES"] = "pipe.full"
    _root, ids, events = fan_out_story(time.time())
    alerts = apply(events) + apply(events)  # a batch applied twice raises nothing more
    assert len(alerts) == 1
    alert = db.session.get(Alert, alerts[0])
    assert alert.kind == "run_failure" and alert.severity == "critical"
    assert alert.task_id == ids[3] and alert.message == "HTTP 503" and NAMES[0] in alert.title


def test_a_retry_of_one_step_does_not_go_on_with_its_chain(app: Flask) -> None:
    """An operator's retry of a failed step sends that step alone: the run stays failed (not
    running forever) at the first step not run, and a resume goes on from there."""
    from app.runs.resend import resume_plan

    t0 = time.time()
    ids, events = chain_story(t0, fail_at=0)
    retry = str(uuid.uuid4())
    events += [
        event(ev.PUBLISHED, retry, t0 + 5, task_name=NAMES[0], root_id=retry, retry_of=ids[0],
              args=[0], kwargs={}),
        event(ev.STARTED, retry, t0 + 6),
        event(ev.SUCCEEDED, retry, t0 + 7, result={"raw_id": 1}),
    ]  # fmt: skip
    apply(events)
    run = run_of(ids[0])
    assert run.status == "failure" and run.finished_at is not None
    assert run.failed_step_task_id == ids[1] and run.steps_not_run == 3
    plan = resume_plan(run, app.extensions["celery"])
    assert plan.replaces == dict(zip(plan.task_ids, ids[1:], strict=True))
    assert [list(s.args) for s in plan.signatures] == [[1], [2], [3]]
    assert plan.root_id == ids[0]
