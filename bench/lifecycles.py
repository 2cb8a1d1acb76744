"""Task lifecycles made as the tracking signal handlers make them (app.tracking.signals), for
bench/recorder.py: the same event dicts, bounded by ``bound_event``, written with the emitter's
own encoding.

A publish comes from the sending process, through an ``Emitter`` (entries of up to 32 events).
Each attempt's end is one entry, its final event with its start in ``before``, as a pool process
flushes it when the task returns. A lifecycle carries arguments, a small result or an error, and
3 log lines; 5% are retried once (the retry's publish travels with the first attempt's end, as
from the pool process) and then succeed; 2% fail with a traceback (processing tasks: no retry,
no dead letter, no alert).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.tracking import events as ev
from app.tracking.bounds import bound_event
from app.tracking.capture import capture_arguments, capture_result
from app.tracking.emitter import Emitter, _encode, _xadd
from app.tracking.signals import new_run_id

# name, queue, task type, max_retries (the type's policy, app.tracking.policies)
RETRIEVE = ("data_pipeline.tasks.retrieve_source", "data_retrieval", "retrieval", 6)
PROCESS = ("data_pipeline.tasks.process_raw", "data_processing", "processing", 1)
AGGREGATE = ("data_pipeline.tasks.aggregate_country_month", "aggregation", "aggregation", 3)
VARIABLES = 8  # of the one source the bench creates
WORKERS = ("celery@bench-a", "celery@bench-b")
RETRY_DELAY = 2.0
TRACEBACK = """Traceback (most recent call last):
  File "/srv/ewas/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/srv/ewas/app/celery_app.py", line 31, in __call__
    return self.run(*args, **kwargs)
  File "/srv/ewas/app/tasks/data_pipeline.py", line 33, in process_raw
    result = processing.process(raw_id)
  File "/srv/ewas/app/pipeline/processing.py", line 88, in process
    raise DataValidationError(f"raw payload {raw.id}: {len(bad)} records without a country")
app.tracking.policies.DataValidationError: raw payload {raw}: 3 records without a country"""


def shape(number: int) -> tuple[tuple[str, str, str, int], str]:
    """The task of lifecycle ``number`` and how it ends: 2% fail, 5% are retried once."""
    if number % 50 == 7:
        return PROCESS, ev.FAILED
    if number % 20 == 3:
        return RETRIEVE, ev.RETRIED
    return (RETRIEVE, PROCESS, AGGREGATE)[number % 3], ev.SUCCEEDED


def arguments(task: tuple, number: int) -> tuple[list[Any], dict[str, Any], dict[str, int]]:
    """Positional and keyword arguments, and the source and variable tracking links from them."""
    variable = 1 + number % VARIABLES
    if task is RETRIEVE:
        return [1, variable], {}, {"source_id": 1, "variable_id": variable}
    if task is PROCESS:
        return [number], {}, {}
    return [], {"variable_id": variable}, {"variable_id": variable}


def event(kind: str, task_id: str, attempt: int, fields: dict, ts: float, run_id: str = "") -> dict:
    made = {"kind": kind, "task_id": task_id, "ts": ts, "attempt": attempt, "fields": fields}
    if run_id:
        made["run_id"] = run_id
    return bound_event(made)


def published(number: int, task_id: str, ts: float, attempt: int = 0, eta: str | None = None):
    """The publish event (``signals.on_publish``) of a top-level task."""
    task, _end = shape(number)
    args, kwargs, _links = arguments(task, number)
    fields = {"task_name": task[0], "queue": task[1], "task_type": task[2], "parent_id": None,
              "root_id": task_id, "eta": eta, "schedule_id": None, "schedule_occurrence": None,
              "run_kind": None, "retry_of": None, **capture_arguments(args, kwargs)}  # fmt: skip
    return event(ev.PUBLISHED, task_id, attempt, fields, ts)


def attempt_end(number: int, task_id: str, attempt: int, kind: str, ends: float) -> dict:
    """The final event of one attempt with its start in ``before`` (``signals.on_prerun`` and
    ``on_postrun``), the attempt having run for 5 to 45 ms."""
    task, _end = shape(number)
    name, queue, task_type, max_retries = task
    _args, _kwargs, links = arguments(task, number)
    run_id = new_run_id()
    began = ends - 0.005 - (number % 41) / 1000
    started = event(ev.STARTED, task_id, attempt, {"task_name": name, "queue": queue,
                    "worker": WORKERS[number % 2], "task_type": task_type,
                    "max_retries": max_retries, "parent_id": None, "root_id": task_id, **links},
                    began, run_id)  # fmt: skip
    logger = f"app.pipeline.{task_type}"
    fields: dict[str, Any] = {
        "cpu_seconds": round((ends - began) * 0.8, 6),
        "peak_memory_bytes": 90_000_000 + (number % 997) * 4096,
        "logs": [
            {"time": began + 0.001, "level": "INFO", "logger": logger,
             "message": f"{name.rsplit('.', 1)[1]} of item {number}: starting"},
            {"time": began + 0.003, "level": "INFO", "logger": logger,
             "message": f"fetched 48213 bytes in 212 ms (HTTP 200), {number % 90 + 10} records"},
            {"time": ends - 0.001, "level": "INFO", "logger": logger,
             "message": f"stored raw payload {number} (sha256 9f2c41d07be3a5e8)"},
        ],
    }  # fmt: skip
    if kind == ev.SUCCEEDED:
        fields["result"] = capture_result(
            {"raw_id": number, "size_bytes": 48213, "records": number % 90 + 10, "unchanged": False}
        )
    elif kind == ev.RETRIED:
        fields.update(error_message="TransientNetworkError: HTTP 503 from api.internal-displacement"
                      ".org", retry_delay_seconds=RETRY_DELAY)  # fmt: skip
    else:
        trace = TRACEBACK.replace("{raw}", str(number))
        fields.update(error_message=trace.rsplit("\n", 1)[1], traceback=trace, is_dead_letter=False)
    final = event(kind, task_id, attempt, fields, ends, run_id)
    final["before"] = started
    return final


def first_attempt(number: int, task_id: str, ends: float) -> list[dict]:
    """The entry a pool process flushes when a lifecycle's first attempt ends: a retried one
    carries the retry's publish too (emitted by the pool process during ``self.retry``)."""
    _task, kind = shape(number)
    if kind != ev.RETRIED:
        return [attempt_end(number, task_id, 0, kind, ends)]
    eta = datetime.fromtimestamp(ends + RETRY_DELAY, UTC).isoformat()
    return [published(number, task_id, ends - 0.001, 1, eta), attempt_end(number, task_id, 0,
            ev.RETRIED, ends)]  # fmt: skip


def write(connection: Any, entries: list[list[dict]]) -> None:
    """Worker entries, one per flush of a pool process, sent in one pipelined write with the
    emitter's own encoding; each XADD's reply is read."""
    if entries:
        connection.send_packed_command([b"".join(_xadd(_encode(e)) for e in entries)], False)
        for _ in entries:
            connection.read_response()


def begin(number: int, ends: float, sender: Emitter) -> tuple[str, list[dict]]:
    """A new task: its publish given to the sending process's emitter; its id and the entry its
    first attempt's end makes."""
    task_id = str(uuid.uuid4())
    sender.emit(published(number, task_id, ends - 0.05))
    return task_id, first_attempt(number, task_id, ends)
