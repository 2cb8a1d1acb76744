"""Export of the filtered executions as CSV or JSON, streamed in keyset batches.

The response is a generator: rows are read 2,000 at a time and written out as they come, so an
export of 100,000 rows holds one batch in memory, never the whole set.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import request, stream_with_context
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.auth.access import requires
from app.extensions import db
from app.models import Role, Source, TaskExecution, TaskType, Variable
from app.services.executions import batches
from app.web import bp
from app.web.execution_filters import ExecutionFilterForm
from app.web.executions import invalid_page

BATCH_SIZE = 2000  # rows per database query
CHUNK_ROWS = 500  # rows per chunk written to the client
FORMATS = {"csv": "text/csv", "json": "application/json"}
# Spreadsheets run cells that start with these as formulas (CSV injection), also after leading
# whitespace and in their fullwidth forms (U+FF1D U+FF0B U+FF0D U+FF20: NFKC folds them).
FORMULA_STARTS = ("=", "+", "-", "@")
CONTROL_STARTS = ("\t", "\r", "\n")
# Every cell quoted: a spreadsheet opening the file with ";" (or tab) as its separator must not
# split a cell that QUOTE_MINIMAL, thinking only of ",", left bare.
CSV_DIALECT: dict[str, Any] = {"lineterminator": "\r\n", "quoting": csv.QUOTE_ALL}
FIELDS = (
    "task_id",
    "task_name",
    "task_type",
    "status",
    "queue",
    "worker",
    "source",
    "variable",
    "created_at",
    "started_at",
    "completed_at",
    "duration_seconds",
    "retry_count",
    "error_message",
    "retry_of",
    "parent_id",
    "root_id",
    "schedule_id",
    "is_dead_letter",
)
C = TaskExecution
COLUMNS = (
    C.task_id,
    C.task_name,
    C.task_type_id,
    C.status,
    C.queue,
    C.worker,
    C.source_id,
    C.variable_id,
    C.started_at,
    C.completed_at,
    C.retry_count,
    C.error_message,
    C.retry_of,
    C.parent_id,
    C.root_id,
    C.schedule_id,
    C.is_dead_letter,
    C.created_at,  # the keyset: created_at and id come last
    C.id,
)


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, made inert with a leading quote."""
    if not isinstance(value, str):
        return value
    if value.startswith(CONTROL_STARTS):
        return "'" + value
    if unicodedata.normalize("NFKC", value.lstrip()[:1]).startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def records(args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The matching executions as flat dicts, newest first, read batch by batch."""
    types = dict(db.session.execute(select(TaskType.id, TaskType.name)).all())
    sources = dict(db.session.execute(select(Source.id, Source.code)).all())
    variables = dict(db.session.execute(select(Variable.id, Variable.code)).all())
    for batch in batches(args, COLUMNS, BATCH_SIZE):
        for row in batch:
            started, completed = row.started_at, row.completed_at
            yield {
                "task_id": row.task_id,
                "task_name": row.task_name,
                "task_type": types.get(row.task_type_id),
                "status": str(row.status),
                "queue": row.queue,
                "worker": row.worker,
                "source": sources.get(row.source_id),
                "variable": variables.get(row.variable_id),
                "created_at": _iso(row.created_at),
                "started_at": _iso(started),
                "completed_at": _iso(completed),
                "duration_seconds": (completed - started).total_seconds()
                if started and completed
                else None,
                "retry_count": row.retry_count,
                "error_message": row.error_message,
                "retry_of": row.retry_of,
                "parent_id": row.parent_id,
                "root_id": row.root_id,
                "schedule_id": row.schedule_id,
                "is_dead_letter": row.is_dead_letter,
            }


def csv_header() -> str:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=FIELDS, **CSV_DIALECT).writeheader()
    return buffer.getvalue()


def as_csv(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One line per row, in chunks; text cells neutralised against formulas."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, **CSV_DIALECT)
    for count, row in enumerate(rows, 1):
        writer.writerow({k: neutralise(v) for k, v in row.items()})
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def as_json(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The elements of a JSON array, one object per line, in chunks; then its end."""
    lines: list[str] = []
    separator = "\n"
    for row in rows:
        lines.append(separator + json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        separator = ",\n"
        if len(lines) == CHUNK_ROWS:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines) + "\n]\n"


def _first_then(first: str, rest: Iterator[str]) -> Iterator[str]:
    """``first``, then ``rest``: whoever pulls one chunk to start the response (a server, the
    test client) gets it without ``rest`` pushing the request context yet, so an abandoned
    download leaves no context pushed."""
    yield first
    yield from rest


@bp.get("/executions/export")
@requires(Role.VIEWER)
def executions_export() -> Response:
    """Download the executions matching the list filters, as CSV (default) or JSON."""
    form = ExecutionFilterForm(request.args)
    kind = request.args.get("format", "csv")
    if kind not in FORMATS:
        form.validate()
        message = _("Unknown export format %(format)s; use csv or json.", format=kind[:20])
        return invalid_page(form, message)
    if not form.validate():
        return invalid_page(form, _("Some filters are not valid; see the messages beside them."))
    rows = records(form.query())
    first, rest = (csv_header(), as_csv(rows)) if kind == "csv" else ("[", as_json(rows))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(_first_then(first, stream_with_context(rest)), mimetype=FORMATS[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="executions-{stamp}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    return response
