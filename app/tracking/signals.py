"""Celery signal handlers that turn a task's life into tracking events (no code in task bodies).

Publish events come from whichever process sends the task (web, beat, a worker); attempt events
from the pool process that runs it; revocations from the worker's main process.
"""

from __future__ import annotations

import itertools
import os
import time
import traceback as tb
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from celery import signals
from celery.exceptions import Retry

from app.tracking import events
from app.tracking.bounds import bound_event
from app.tracking.capture import (
    AttemptLogs,
    AttemptResources,
    capture_arguments,
    capture_result,
    install_log_capture,
)
from app.tracking.emitter import Emitter

QUEUE_TYPES = {
    "data_retrieval": "retrieval",
    "data_processing": "processing",
    "aggregation": "aggregation",
    "monitoring": "monitoring",
    "maintenance": "maintenance",
}
HEADER_PREFIX = "ewas_"


@dataclass
class Attempt:
    """What the pool process remembers about the attempt it is running."""

    run_id: str
    attempt: int
    resources: AttemptResources
    outcome: dict[str, Any] = field(default_factory=dict)
    # Tasks this attempt sent (their ids and names): a run knows them before their own events.
    children: list[dict[str, str | None]] | None = None
    # The schedule's retry override this attempt ran under; the tasks it sends inherit it, so it
    # applies to the whole run (chain steps, tasks sent by a step), not to the first task only.
    retry_policy: dict[str, Any] | None = None


@dataclass
class Tracker:
    emitter: Emitter
    enabled: bool = True
    logs: AttemptLogs = field(default_factory=AttemptLogs)
    logs_installed: bool = False
    attempts: dict[str, Attempt] = field(default_factory=dict)


_tracker: Tracker | None = None
_run_ids: tuple[int, str, itertools.count] | None = None


def new_run_id() -> str:
    """A unique id for one run of a task: a random prefix per process plus a counter (a fork
    gets a new prefix), far cheaper than a uuid4 per task."""
    global _run_ids
    pid = os.getpid()
    if _run_ids is None or _run_ids[0] != pid:
        _run_ids = (pid, os.urandom(10).hex(), itertools.count())
    return f"{_run_ids[1]}-{next(_run_ids[2])}"


def activate(tracker: Tracker) -> None:
    """Make ``tracker`` receive this process's signals (connected once per process)."""
    global _tracker
    _tracker = tracker
    if not getattr(activate, "connected", False):
        for signal, handler in HANDLERS:
            signal.connect(handler, weak=False)
        activate.connected = True  # type: ignore[attr-defined]  # remembered on the function


def active() -> Tracker | None:
    return _tracker if _tracker is not None and _tracker.enabled else None


def task_type_of(task: Any, queue: str | None) -> str | None:
    return getattr(task, "task_type", None) or QUEUE_TYPES.get(queue or "")


def emit(
    kind: str,
    task_id: str,
    attempt: int,
    fields: dict[str, Any],
    flush: bool = False,
    run_id: str | None = None,
    key: str | None = None,
    before: dict[str, Any] | None = None,
) -> None:
    tracker = active()
    if tracker is None or not task_id:
        return
    event = {
        "kind": kind,
        "task_id": task_id,
        "ts": time.time(),
        "attempt": attempt,
        "fields": fields,
    }
    if run_id:
        event["run_id"] = run_id
    if before is not None:
        event["before"] = before  # an earlier event of the same task, sent in the same entry
    tracker.emitter.emit(bound_event(event), flush=flush, key=key)


def on_publish(
    sender: str | None = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict | None = None,
    **_: Any,
) -> None:
    tracker = active()
    if tracker is None or not headers or "id" not in headers:
        return
    from celery import current_app

    name = headers.get("task") or sender
    args, kwargs = (
        (body[0], body[1]) if isinstance(body, list | tuple) and len(body) >= 2 else ((), {})
    )
    fields = {
        "task_name": name,
        "queue": routing_key,
        "task_type": task_type_of(current_app.tasks.get(name), routing_key),
        "parent_id": headers.get("parent_id"),
        "root_id": headers.get("root_id"),
        "eta": headers.get("eta"),
        "schedule_id": headers.get("ewas_schedule_id"),
        "schedule_occurrence": headers.get("ewas_occurrence"),
        "run_kind": headers.get("ewas_run_kind"),
        "retry_of": headers.get("ewas_retry_of"),
        **capture_arguments(args, kwargs),
    }
    embed = body[2] if isinstance(body, list | tuple) and len(body) >= 3 else None
    if isinstance(embed, dict) and embed.get("chain"):
        fields["planned"] = planned_steps(embed["chain"])
    sender_attempt = tracker.attempts.get(headers.get("parent_id") or "")
    # A message rooted at itself starts a run of its own (a backfill sent by a worker's task):
    # it is not a step of its sender's run.
    if sender_attempt is not None and headers.get("root_id") != headers["id"]:
        if sender_attempt.children is None:
            sender_attempt.children = []
        sender_attempt.children.append({"task_id": headers["id"], "task_name": name})
        if sender_attempt.retry_policy and "ewas_retry_policy" not in headers:
            headers["ewas_retry_policy"] = sender_attempt.retry_policy
    headers["ewas_tracked"] = 1
    emit(events.PUBLISHED, headers["id"], int(headers.get("retries") or 0), fields)


def planned_steps(chain: list[Any]) -> list[dict[str, Any]]:
    """The later steps of a chain, in the order they will run, from the message's ``chain``
    (Celery keeps it last step first); arguments captured as an execution's are."""
    steps = []
    for signature in reversed(chain):
        if not isinstance(signature, dict):
            continue
        options = signature.get("options") or {}
        if not options.get("task_id"):
            continue
        captured = capture_arguments(signature.get("args") or (), signature.get("kwargs") or {})
        step = {
            "task_id": options["task_id"],
            "task_name": signature.get("task"),
            "args": captured["args"],
            "kwargs": captured["kwargs"],
            "immutable": bool(signature.get("immutable")),
            "replayable": captured["replayable"],
        }
        retry_of = (options.get("headers") or {}).get("ewas_retry_of")
        if retry_of:
            step["retry_of"] = retry_of
        steps.append(step)
    return steps


def on_prerun(task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    tracker = _tracker
    if tracker is None or not tracker.enabled or not task_id:
        return
    request = task.request
    delivery_info = request.delivery_info
    queue = delivery_info.get("routing_key") if delivery_info else None
    run_id = new_run_id()
    attempt = Attempt(run_id=run_id, attempt=request.retries or 0, resources=AttemptResources())
    tracker.attempts[task_id] = attempt
    if not tracker.logs_installed:
        install_log_capture(tracker.logs)
        tracker.logs_installed = True
    tracker.logs.start(publish=partial(_publish_lines, tracker, task_id, attempt.attempt, run_id))
    attempt.resources.start()
    headers = request.headers or {}
    policy = headers.get("ewas_retry_policy")
    attempt.retry_policy = policy
    fields: dict[str, Any] = {
        "task_name": task.name,
        "queue": queue,
        "worker": request.hostname,
        "task_type": getattr(task, "task_type", None) or QUEUE_TYPES.get(queue or ""),
        "max_retries": policy.get("max_retries", task.max_retries) if policy else task.max_retries,
        "parent_id": request.parent_id,
        "root_id": request.root_id,
    }
    if headers.get("ewas_retry_of"):
        fields["retry_of"] = headers["ewas_retry_of"]
    if kwargs or getattr(task, "tracked_arguments", None):
        fields.update(linked_entities(task, args, kwargs))
    if not headers.get("ewas_tracked"):
        fields.update(capture_arguments(args, kwargs))
    event = {
        "kind": events.STARTED,
        "task_id": task_id,
        "ts": time.time(),
        "attempt": attempt.attempt,
        "fields": fields,
        "run_id": run_id,
    }
    tracker.emitter.emit(bound_event(event), key=run_id)


def _publish_lines(
    tracker: Tracker, task_id: str, attempt: int, run_id: str, lines: list[dict[str, Any]]
) -> None:
    """A running attempt's lines so far, shown on its page while it runs: one buffered event per
    task at a time (a newer window replaces one not sent yet)."""
    key = f"logs:{task_id}"
    tracker.emitter.take(key)
    event = {
        "kind": events.LOGS,
        "task_id": task_id,
        "ts": time.time(),
        "attempt": attempt,
        "run_id": run_id,
        "fields": {"logs": lines},
    }
    tracker.emitter.emit(event, key=key)


def effective_max_retries(task: Any) -> int | None:
    policy = (task.request.headers or {}).get("ewas_retry_policy") or {}
    return policy.get("max_retries", task.max_retries)


def linked_entities(task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """Source and variable ids, from the argument names the task declares (or the defaults)."""
    names = getattr(task, "tracked_arguments", None) or {}
    if not kwargs and not names:
        return {}
    kwargs = kwargs or {}
    found: dict[str, Any] = {}
    for column, default in (("source_id", "source_id"), ("variable_id", "variable_id")):
        argument = names.get(column, default)
        value = kwargs.get(argument)
        if value is None and argument in getattr(task, "positional_names", ()):
            index = task.positional_names.index(argument)
            value = args[index] if args and index < len(args) else None
        if isinstance(value, int) and not isinstance(value, bool):
            found[column] = value
    return found


def on_failure(
    sender: Any = None, exception: BaseException | None = None, einfo: Any = None, **_: Any
) -> None:
    attempt = _current(sender)
    if attempt is None:
        return
    task = sender
    max_retries = effective_max_retries(task)
    exhausted = bool(max_retries and (task.request.retries or 0) >= max_retries)
    attempt.outcome = {
        "kind": events.FAILED,
        "error_message": describe_error(exception),
        "traceback": str(einfo) if einfo is not None else None,
        "is_dead_letter": exhausted,
    }
    if exhausted:
        # The dead-letter store keeps the exact message, so it can be requeued as it ran.
        request = task.request
        attempt.outcome["dead_letter_message"] = {
            "task_name": task.name,
            "queue": (request.delivery_info or {}).get("routing_key"),
            "args": list(request.args or ()),
            "kwargs": dict(request.kwargs or {}),
            "headers": {
                k: v for k, v in (request.headers or {}).items() if k.startswith(HEADER_PREFIX)
            },
        }


def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    attempt = _current(sender)
    if attempt is None:
        return
    when = getattr(reason, "when", None) if isinstance(reason, Retry) else None
    delay = when if isinstance(when, int | float) else None
    if delay is None and when is not None:
        delay = max(0.0, when.timestamp() - time.time())
    cause = getattr(reason, "exc", None) or reason
    attempt.outcome = {
        "kind": events.RETRIED,
        "error_message": describe_error(cause),
        "retry_delay_seconds": delay,
    }


def on_postrun(
    task_id: str, task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    tracker = _tracker
    if tracker is None or not tracker.enabled:
        return
    attempt = tracker.attempts.pop(task_id, None)
    if attempt is None:
        return
    fields = attempt.resources.stop()
    published = tracker.logs.live.get() is not None  # lines were sent while it ran
    fields["logs"] = tracker.logs.stop()
    if published:
        tracker.emitter.take(f"logs:{task_id}")  # the final event carries every line
    if attempt.children:
        fields["children"] = attempt.children
    outcome = attempt.outcome
    if outcome:
        fields.update(outcome)
        kind = fields.pop("kind", None) or events.FAILED
    elif state == "SUCCESS":
        kind = events.SUCCEEDED
        fields["result"] = capture_result(retval)
    else:
        kind = events.FAILED
    run_id = attempt.run_id
    event = {
        "kind": kind,
        "task_id": task_id,
        "ts": time.time(),
        "attempt": attempt.attempt,
        "fields": fields,
        "run_id": run_id,
    }
    event = bound_event(event)
    started = tracker.emitter.take(run_id)
    if started is not None:
        event["before"] = started  # the start (bounded already) travels in the same entry
    # Confirmed by Redis before the task returns and its message is acknowledged (or kept
    # buffered after TRACKING_CONFIRM_TIMEOUT during a Redis outage).
    tracker.emitter.emit(event, flush=True)


def on_revoked(
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    if request is None:
        return
    reason = "expired" if expired else ("terminated" if terminated else "revoked")
    emit(
        events.REVOKED,
        request.id,
        # a worker Request (terminate) or a task Context (revoked before start)
        getattr(request, "retries", None)
        or (getattr(request, "request_dict", None) or {}).get("retries", 0),
        {"error_message": reason, "worker": getattr(request, "hostname", None)},
        flush=True,
    )


def on_unknown(name: str | None = None, id: str | None = None, exc: Any = None, **_: Any) -> None:
    emit(
        events.FAILED,
        id or "",
        0,
        {"task_name": name, "error_message": f"Unknown task {name!r}: no worker registers it."},
        flush=True,
    )


def describe_error(exception: BaseException | Any) -> str:
    if exception is None:
        return events.UNKNOWN_ERROR
    if isinstance(exception, BaseException):
        text = "".join(tb.format_exception_only(type(exception), exception)).strip()
        return text or type(exception).__name__
    return str(exception)


def _current(task: Any) -> Attempt | None:
    tracker = active()
    if tracker is None or task is None:
        return None
    return tracker.attempts.get(task.request.id)


HANDLERS = (
    (signals.before_task_publish, on_publish),
    (signals.task_prerun, on_prerun),
    (signals.task_failure, on_failure),
    (signals.task_retry, on_retry),
    (signals.task_postrun, on_postrun),
    (signals.task_revoked, on_revoked),
    (signals.task_unknown, on_unknown),
)
