"""Bounds on the values of a tracking event, so that the database accepts every event a task
can produce: integers in their column's range, strings cut to their column's length with a
marker, no NUL characters anywhere (PostgreSQL refuses them in text and JSON).

Applied where events are made (the worker, the publisher) and again by the recorder on every
event it reads (an older worker, or anything else that writes to the stream). The limits are
read from the execution table itself, so a column change moves them too.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import BigInteger, Integer, String

from app.models import TaskExecution

CUT_MARKER = "…"
# Columns that hold a task id: cut ones keep a digest of the whole id, so two long ids that
# share a prefix stay two executions.
ID_COLUMNS = frozenset({"task_id", "parent_id", "root_id", "retry_of"})
INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
# The event's attempt becomes retry_count and, times four, state_rank (both INTEGER).
MAX_ATTEMPT = (2**31 - 1) // 4 - 1


def _column_limits() -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    lengths, ranges = {}, {}
    for column in TaskExecution.__table__.columns:
        kind = column.type
        if isinstance(kind, String) and kind.length:
            lengths[column.name] = kind.length
        elif isinstance(kind, BigInteger):
            ranges[column.name] = INT_RANGES["bigint"]
        elif isinstance(kind, Integer) and column.name != "id":
            ranges[column.name] = INT_RANGES["integer"]
    # what the row takes from the Source and Variable tables (INTEGER keys)
    ranges["source_id"] = ranges["variable_id"] = INT_RANGES["integer"]
    return lengths, ranges


LENGTHS, RANGES = _column_limits()


def cut(value: str, limit: int, identifier: bool = False) -> str:
    """``value`` without NUL characters, at most ``limit`` characters, marked when cut."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if len(value) <= limit:
        return value
    if identifier:
        digest = hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"{value[: limit - 9]}{CUT_MARKER}{digest}"
    return value[: limit - 1] + CUT_MARKER


_PLAIN = frozenset({int, float, bool, type(None)})


def clean(value: Any) -> Any:
    """``value`` with NUL characters removed from every string in it (keys included); the same
    object when there is nothing to remove (the common case costs no copy)."""
    kind = type(value)
    if kind is str:
        return value.replace("\x00", "") if "\x00" in value else value
    if kind is list or kind is tuple:
        copy = None
        for index, item in enumerate(value):
            if type(item) in _PLAIN:
                continue
            new = clean(item)
            if new is not item:
                copy = copy if copy is not None else list(value)
                copy[index] = new
        return value if copy is None else copy
    if kind is dict:
        changed = False
        for key, item in value.items():
            if (type(key) is str and "\x00" in key) or (
                type(item) not in _PLAIN and clean(item) is not item
            ):
                changed = True
                break
        if not changed:
            return value
        return {clean(key): clean(item) for key, item in value.items()}
    return value


def bound_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every value within its column's bounds; the same dict when all were."""
    changed: dict[str, Any] | None = None
    for name, value in fields.items():
        kind = type(value)
        if kind is str:
            limit = LENGTHS.get(name)
            if "\x00" not in value and (limit is None or len(value) <= limit):
                continue
            new = cut(value, limit, name in ID_COLUMNS) if limit else value.replace("\x00", "")
        elif kind is int:
            low_high = RANGES.get(name)
            if low_high is None or low_high[0] <= value <= low_high[1]:
                continue
            new = None  # out of its column's range: dropped, never a crash
        elif kind is dict or kind is list:  # stored as JSON: only NUL characters go
            if not value:
                continue
            new = clean(value)
            if new is value:
                continue
        else:
            continue
        if changed is None:
            changed = {}
        changed[name] = new
    return {**fields, **changed} if changed else fields


def bound_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` (and the earlier event it may carry) within bounds: the same object when it
    already was, else a bounded copy (the original is left as it was)."""
    changed: dict[str, Any] = {}
    task_id = event.get("task_id")
    if type(task_id) is str and (len(task_id) > LENGTHS["task_id"] or "\x00" in task_id):
        changed["task_id"] = cut(task_id, LENGTHS["task_id"], identifier=True)
    attempt = event.get("attempt")
    if type(attempt) is int and not 0 <= attempt <= MAX_ATTEMPT:
        changed["attempt"] = min(max(attempt, 0), MAX_ATTEMPT)
    run_id = event.get("run_id")
    if type(run_id) is str and "\x00" in run_id:
        changed["run_id"] = run_id.replace("\x00", "")
    fields = event.get("fields")
    if type(fields) is dict:
        bounded = bound_fields(fields)
        if bounded is not fields:
            changed["fields"] = bounded
    before = event.get("before")
    if type(before) is dict:
        bounded_before = bound_event(before)
        if bounded_before is not before:
            changed["before"] = bounded_before
    return {**event, **changed} if changed else event
