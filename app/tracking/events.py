"""Tracking events and the pure rules that fold them into an execution row.

Events arrive in batches, possibly out of order and more than once. Each status-bearing event has
an order key (attempt, phase, time); an event moves the row only when its key is newer than the
last one applied, so a late ``pending`` never overwrites ``started`` and a late ``started`` never
overwrites a final status of the same attempt. Descriptive fields (name, queue, arguments, ...) are
filled from whichever event carries them first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

PUBLISHED = "published"
STARTED = "started"
RETRIED = "retried"
SUCCEEDED = "succeeded"
FAILED = "failed"
REVOKED = "revoked"
NOTE = "note"  # extra data from the helper API; never changes the status
# The log lines of a running attempt so far (its whole window, not a delta): shown while it runs,
# replaced by the final event's capture; never changes the status.
LOGS = "logs"

PHASES = {PUBLISHED: 0, STARTED: 1, RETRIED: 2, SUCCEEDED: 2, FAILED: 2, REVOKED: 3}
STATUSES = {
    PUBLISHED: "pending",
    STARTED: "started",
    RETRIED: "retry",
    SUCCEEDED: "success",
    FAILED: "failure",
    REVOKED: "revoked",
}
FINAL_KINDS = frozenset({SUCCEEDED, FAILED, REVOKED})

# Fields an event may describe; filled when the row has none yet.
DESCRIPTIVE = (
    "task_name",
    "queue",
    "task_type",
    "args",
    "kwargs",
    "arg1",
    "parent_id",
    "root_id",
    "retry_of",
    "schedule_id",
    "run_kind",
    "schedule_occurrence",
    "source_id",
    "variable_id",
    "max_retries",
)
# Fields that belong to one attempt's outcome; set by the event that moves the status.
OUTCOME = (
    "worker",
    "result",
    "error_message",
    "traceback",
    "logs",
    "cpu_seconds",
    "peak_memory_bytes",
    "is_dead_letter",
)
UNKNOWN_ERROR = "Task failed without an error message."


@overload
def to_datetime(timestamp: float) -> datetime: ...
@overload
def to_datetime(timestamp: None) -> None: ...
@overload
def to_datetime(timestamp: float | None) -> datetime | None: ...
def to_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def order_key(event: dict[str, Any]) -> tuple[int, int, float]:
    return (int(event.get("attempt") or 0), PHASES[event["kind"]], float(event["ts"]))


def rank_of(key: tuple[int, int, float]) -> int:
    """Attempt and phase packed into one sortable integer column."""
    return key[0] * 4 + key[1]


def new_row(task_id: str, first_ts: float) -> dict[str, Any]:
    """The row an execution starts from before any event is applied."""
    created = to_datetime(first_ts)
    return {
        "task_id": task_id,
        "status": "pending",
        "created_at": created,
        "updated_at": created,
        "retry_count": 0,
        "is_dead_letter": False,
        "lost_suspect": False,
        "replayable": True,
        "state_rank": -1,
        "state_at": 0.0,
        "started_at": None,
        "completed_at": None,
    }


def fold(row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply ``events`` to ``row`` (a dict of column values) and return the new row."""
    row = dict(row)
    row["attempts"] = [dict(run) for run in row.get("attempts") or []]
    for event in sorted(events, key=_sort_key):
        if event["kind"] == LOGS:
            _live_logs(row, event)
            continue
        _describe(row, event)
        _timeline(row["attempts"], event)
        if event["kind"] == NOTE:
            _note(row, event)
        elif _is_newer(row, event):
            _move(row, event)
        elif (
            event["kind"] == STARTED
            and row.get("started_at") is None
            and int(event.get("attempt") or 0) == row.get("retry_count", 0)
        ):
            # The attempt already ended (its final event came first): keep when it began.
            row["started_at"] = to_datetime(event["ts"])
            row["worker"] = row.get("worker") or (event.get("fields") or {}).get("worker")
    _keep_consistent(row)
    return row


def _sort_key(event: dict[str, Any]) -> tuple[int, int, float]:
    if event["kind"] == NOTE:
        return (-1, -1, float(event["ts"]))
    if event["kind"] == LOGS:  # after its attempt's start, before its end
        return (int(event.get("attempt") or 0), PHASES[STARTED], float(event["ts"]))
    return order_key(event)


def _live_logs(row: dict[str, Any], event: dict[str, Any]) -> None:
    """A running attempt's lines so far: kept only while that very attempt is the running one
    (a late copy never overwrites the final capture, nor another attempt's lines), and only
    when newer than the lines the row shows."""
    attempt = int(event.get("attempt") or 0)
    if row.get("status") != STATUSES[STARTED] or attempt != row.get("retry_count", 0):
        return
    lines = (event.get("fields") or {}).get("logs")
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        return
    shown = row.get("logs") if isinstance(row.get("logs"), list) else []
    if shown and _last_time(shown) > _last_time(lines):
        return
    row["logs"] = lines


def _last_time(lines: list[Any]) -> float:
    last = lines[-1] if lines else None
    try:
        return float(last.get("time") or 0.0) if isinstance(last, dict) else 0.0
    except (TypeError, ValueError):
        return 0.0


def _is_newer(row: dict[str, Any], event: dict[str, Any]) -> bool:
    key = order_key(event)
    current = (row.get("state_rank", -1), row.get("state_at") or 0.0)
    return (rank_of(key), key[2]) > current


def _describe(row: dict[str, Any], event: dict[str, Any]) -> None:
    fields = event.get("fields") or {}
    for name in DESCRIPTIVE:
        if row.get(name) is None and fields.get(name) is not None:
            row[name] = fields[name]
    if fields.get("replayable") is False:
        row["replayable"] = False  # any event that saw redacted or cut arguments says so
    row["schedule_occurrence"] = _parse_time(row.get("schedule_occurrence"))
    created = to_datetime(event["ts"])
    if event["kind"] == PUBLISHED and created is not None and created < row["created_at"]:
        row["created_at"] = created


def _note(row: dict[str, Any], event: dict[str, Any]) -> None:
    """Helper-API data overrides what signals inferred (the task knows its own source)."""
    for name, value in (event.get("fields") or {}).items():
        if name in DESCRIPTIVE or name == "result":
            row[name] = value


def _move(row: dict[str, Any], event: dict[str, Any]) -> None:
    kind = event["kind"]
    fields = event.get("fields") or {}
    key = order_key(event)
    attempt = key[0]
    when = to_datetime(event["ts"])
    row["state_rank"], row["state_at"] = rank_of(key), key[2]
    row["updated_at"] = max(row.get("updated_at") or when, when)

    if kind == PUBLISHED:
        # A retry re-publishes the same id: that must not turn a waiting retry back into pending,
        # but its eta says when the next attempt is due.
        if row["status"] in ("pending", "retry"):
            row["eta"] = _parse_time(fields.get("eta"))
        return
    row["status"] = STATUSES[kind]
    for name in OUTCOME:
        if name in fields:
            row[name] = fields[name]
    if kind == STARTED:
        row.update(
            started_at=when,
            completed_at=None,
            eta=None,
            retry_count=attempt,
            lost_suspect=False,
            error_message=None,
            traceback=None,
            result=None,
            is_dead_letter=False,
        )
    elif kind == RETRIED:
        row.update(
            retry_count=attempt + 1,
            completed_at=None,
            eta=_parse_time(fields.get("eta")),
        )
    else:
        row.update(completed_at=when, retry_count=max(row.get("retry_count") or 0, attempt))
        row["eta"] = None
        row["lost_suspect"] = False
        if kind == FAILED and not row.get("error_message"):
            row["error_message"] = UNKNOWN_ERROR


ATTEMPT_OUTCOME = ("error_message", "retry_delay_seconds", "cpu_seconds", "peak_memory_bytes")


def _timeline(runs: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Keep one entry per run of the task (a retry or a redelivery is a new run)."""
    kind, run_id = event["kind"], event.get("run_id")
    when = to_datetime(event["ts"]).isoformat()
    attempt = int(event.get("attempt") or 0)
    fields = event.get("fields") or {}
    if kind == REVOKED and not run_id:
        # seen by the worker's main process, which does not know the run: close the open one
        for entry in runs:
            if entry["attempt"] == attempt and entry.get("completed_at") is None:
                entry.update(
                    status=STATUSES[REVOKED],
                    completed_at=when,
                    error_message=fields.get("error_message"),
                )
        return
    if not run_id or kind not in (STARTED, RETRIED, *FINAL_KINDS):
        return
    run = next((r for r in runs if r["run_id"] == run_id), None)
    if run is None:
        run = {
            "run_id": run_id,
            "attempt": attempt,
            "status": STATUSES[STARTED],
            "worker": None,
            "started_at": None,
            "completed_at": None,
        }
        runs.append(run)
    if kind == STARTED:
        run["started_at"] = when
        run["worker"] = fields.get("worker") or run["worker"]
    else:
        run.update(status=STATUSES[kind], completed_at=when)
        run.update({name: fields[name] for name in ATTEMPT_OUTCOME if fields.get(name) is not None})
    runs.sort(key=lambda r: (r["attempt"], r.get("started_at") or r.get("completed_at") or ""))


def _keep_consistent(row: dict[str, Any]) -> None:
    """Clocks of different hosts may disagree; never store a completion before its start."""
    started, completed = row.get("started_at"), row.get("completed_at")
    if started is not None and completed is not None and completed < started:
        row["completed_at"] = started
    if row.get("status") == "failure" and not row.get("error_message"):
        row["error_message"] = UNKNOWN_ERROR


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
