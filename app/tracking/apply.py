"""Apply a batch of tracking events to the database (bulk, idempotent, SQLite and PostgreSQL).

1. take the recorders' lock, then read the rows of the batch's task ids;
2. fold the events into each row (app.tracking.events) and write all rows back with one
   executemany upsert (INSERT ... ON CONFLICT (task_id) DO UPDATE);
3. keep dead letters, raise alerts, pause the schedules that failed too often in a row.
The caller commits.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import JSON, func, select, text
from sqlalchemy.dialects import postgresql

from app.database import dialect_insert
from app.extensions import db
from app.models import FINAL_STATUSES, DeadLetter, Source, TaskExecution, TaskType, Variable
from app.models.types import UTCDateTime
from app.monitoring.rollups import count_finals
from app.runs.pausing import pause_failing
from app.runs.record import record_runs
from app.tracking import events as ev
from app.tracking.alerts import alerts_for, run_alerts

CHUNK = 500
RECORDER_LOCK = 0x45574153  # "EWAS": the advisory lock that serializes recorder batches
ROW_COLUMNS = [c.name for c in TaskExecution.__table__.columns if c.name != "id"]


_insert = dialect_insert


def apply_batch(batch: list[dict[str, Any]]) -> list[int]:
    """Fold ``batch`` into the database; return the ids of alerts it raised."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in batch:
        if event.get("task_id") and event.get("kind") in (*ev.PHASES, ev.NOTE, ev.LOGS):
            by_task[event["task_id"]].append(event)
    if not by_task:
        return []
    _serialize_recorders()
    task_ids = sorted(by_task)
    rows = _current_rows(task_ids)
    references = _References()
    finals: list[dict[str, Any]] = []
    newly_final: list[dict[str, Any]] = []
    no_longer_final: list[dict[str, Any]] = []
    folded = []
    for task_id in task_ids:
        if task_id not in rows and all(e["kind"] == ev.LOGS for e in by_task[task_id]):
            continue  # lines of an execution not recorded (yet): its start brings the row
        before = rows.get(task_id) or ev.new_row(
            task_id, min(float(e["ts"]) for e in by_task[task_id])
        )
        after = references.resolve(ev.fold(before, by_task[task_id]))
        if after["status"] == "failure" and before["status"] != "failure":
            finals.append(after)
        if _rolled_up(before) != _rolled_up(after):
            # A redelivered execution can end again with another outcome or duration: its
            # counters move instead of being added twice.
            if before["status"] in FINAL_STATUSES:
                no_longer_final.append(before)
            if after["status"] in FINAL_STATUSES:
                newly_final.append(after)
        folded.append({column: after.get(column) for column in ROW_COLUMNS})
    _upsert_rows(folded)
    # Hourly statistics: each execution counted once, by the final status this transaction stores.
    type_names = {v: k for k, v in references.types.items()}
    count_finals(no_longer_final, type_names, sign=-1)
    count_finals(newly_final, type_names)
    _keep_dead_letters(finals, by_task)
    # Runs: the executions' runs move in the same transaction; a run that fails raises one alert
    # for the whole run instead of one per execution.
    runs = record_runs(folded, by_task)
    alone = [row for row in finals if row["task_id"] not in runs.members]
    alerts = alerts_for(alone) + run_alerts(runs.failed, references.types)
    # A schedule whose latest N runs failed pauses itself (pause after failures).
    return alerts + pause_failing(runs.failed)


ROLLED_UP = ("status", "task_type_id", "task_name", "started_at", "completed_at", "updated_at")


def _rolled_up(row: dict[str, Any]) -> tuple[Any, ...] | None:
    """What the hourly counters record of a final execution; None while it is not final."""
    if row["status"] not in FINAL_STATUSES:
        return None
    return tuple(row.get(column) for column in ROLLED_UP)


def _serialize_recorders() -> None:
    """One batch at a time across recorders (a transaction-scoped lock on PostgreSQL), so the
    rows read below cannot change before they are written back. SQLite serializes writers
    itself; run a single recorder there."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(RECORDER_LOCK)))


def _current_rows(task_ids: list[str]) -> dict[str, dict[str, Any]]:
    table = TaskExecution.__table__
    rows: dict[str, dict[str, Any]] = {}
    postgres = db.engine.dialect.name == "postgresql"
    for start in range(0, len(task_ids), CHUNK):
        chunk = task_ids[start : start + CHUNK]
        if postgres:
            # One JSON document per chunk, parsed in one call instead of row by row.
            for row in db.session.execute(_ROWS_AS_JSON, {"ids": chunk}).scalar() or ():
                for column in DATETIME_COLUMNS:
                    if row[column] is not None:
                        row[column] = datetime.fromisoformat(row[column]).astimezone(UTC)
                rows[row["task_id"]] = row
            continue
        query = select(table).where(table.c.task_id.in_(chunk))
        for row in db.session.execute(query).mappings():
            rows[row["task_id"]] = dict(row)
    return rows


DATETIME_COLUMNS = [
    c.name for c in TaskExecution.__table__.columns if isinstance(c.type, UTCDateTime)
]
_ROWS_AS_JSON = text(
    f"SELECT json_agg(t) FROM {TaskExecution.__tablename__} t WHERE t.task_id = ANY(:ids)"
)


def _upsert_rows(rows: list[dict[str, Any]]) -> None:
    """Insert new executions and update known ones with one statement.

    On PostgreSQL the whole batch travels as one JSON document expanded by ``json_to_recordset``:
    one statement instead of one per row, and no per-value bind processing in Python. What
    JSON cannot carry exactly (NUL characters, NaN) takes the generic executemany path.
    """
    if db.engine.dialect.name == "postgresql":
        try:
            document = json.dumps(rows, default=_json_value, separators=(",", ":"), allow_nan=False)
        except ValueError:
            document = None
        if document is not None and "\\u0000" not in document:
            db.session.execute(_recordset_upsert(), {"rows": document})
            return
    statement = _insert(TaskExecution.__table__)
    changes = {c: statement.excluded[c] for c in ROW_COLUMNS if c != "task_id"}
    db.session.execute(
        statement.on_conflict_do_update(index_elements=["task_id"], set_=changes), rows
    )


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times must be timezone-aware")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@functools.cache
def _recordset_upsert():
    """INSERT ... SELECT FROM json_to_recordset(:rows) ... ON CONFLICT (task_id) DO UPDATE.

    A Python None in a JSON column is stored as JSON ``null``, as SQLAlchemy's JSON type does.
    """
    columns = {c.name: c for c in TaskExecution.__table__.columns if c.name in ROW_COLUMNS}
    dialect = postgresql.dialect()
    declared, selected = [], []
    for name, column in columns.items():
        kind = column.type.compile(dialect=dialect)
        if kind.startswith("VARCHAR"):
            kind = "TEXT"  # the insert casts to the column's type, with its length check
        declared.append(f'"{name}" {kind}')
        is_json = isinstance(column.type, JSON)
        selected.append(f"COALESCE(r.\"{name}\", 'null'::json)" if is_json else f'r."{name}"')
    names = ", ".join(f'"{name}"' for name in columns)
    updates = ", ".join(f'"{name}" = excluded."{name}"' for name in columns if name != "task_id")
    return text(
        f"INSERT INTO {TaskExecution.__tablename__} ({names}) "
        f"SELECT {', '.join(selected)} FROM json_to_recordset(CAST(:rows AS json)) "
        f"AS r({', '.join(declared)}) "
        f"ON CONFLICT (task_id) DO UPDATE SET {updates}"
    )


class _References:
    """Turns a task type name into its id, and drops source/variable ids that do not exist
    (a bad id from a task's arguments must not make the whole batch fail)."""

    def __init__(self) -> None:
        self.types = dict(db.session.execute(select(TaskType.name, TaskType.id)).all())
        self.sources: dict[int, bool] = {}
        self.variables: dict[int, bool] = {}

    def resolve(self, row: dict[str, Any]) -> dict[str, Any]:
        name = row.pop("task_type", None)
        if row.get("task_type_id") is None and name:
            row["task_type_id"] = self.types.get(name)
        for column, model, cache in (
            ("source_id", Source, self.sources),
            ("variable_id", Variable, self.variables),
        ):
            value = row.get(column)
            if value is not None and value not in cache:
                cache[value] = db.session.get(model, value) is not None
            if value is not None and not cache[value]:
                row[column] = None
        return row


def _keep_dead_letters(finals: list[dict[str, Any]], by_task: dict[str, list]) -> None:
    dead = [row for row in finals if row.get("is_dead_letter")]
    if not dead:
        return
    from app.tracking.deadletters import full_message

    values = []
    for row in dead:
        message = full_message(by_task[row["task_id"]], row)
        values.append({**message, "error_message": row.get("error_message")})
    limit = current_app.config.get("DEAD_LETTER_MAX", 10_000)
    statement = _insert(DeadLetter.__table__).values(values).on_conflict_do_nothing()
    db.session.execute(statement)
    from app.tracking.deadletters import prune

    prune(limit)
