"""Execution queries shared by the JSON API and the pages: filters, keyset pages, batches.

Pages are cut by keyset on (created_at, id), never OFFSET, so a page 10,000 rows deep costs the
same as the first one (the ``ix_task_executions_created_at`` index serves both directions).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Row, Select, literal, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.interfaces import ORMOption

from app.bounds import MAX_BIGINT as MAX_ID
from app.bounds import utc_moment
from app.errors import DomainError
from app.extensions import db
from app.models import TaskExecution, TaskType
from app.services import argument_search, search_plan

BAD_CURSOR = _l("The cursor is not valid; start again from the first page.")
NEWEST_FIRST = (TaskExecution.created_at.desc(), TaskExecution.id.desc())
OLDEST_FIRST = (TaskExecution.created_at.asc(), TaskExecution.id.asc())


class BadCursor(DomainError):
    """A cursor that was not made by :func:`encode_cursor` (edited, cut or stale format)."""

    code = "bad_cursor"
    http_status = 400

    def __init__(self) -> None:
        super().__init__(str(BAD_CURSOR))


def encode_cursor(created_at: datetime, row_id: int, direction: str) -> str:
    """An opaque cursor for the keyset (created_at, id) and a direction (next or prev)."""
    raw = json.dumps([created_at.isoformat(), row_id, direction], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int, str]:
    """The keyset and direction of ``cursor``; raises :class:`BadCursor` when malformed."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id, direction = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or direction not in ("next", "prev"):
            raise ValueError(cursor)
        utc_moment(moment)  # an edited cursor's year 1 or 9999 must not reach the database
        if not isinstance(row_id, int) or isinstance(row_id, bool) or abs(row_id) > MAX_ID:
            raise ValueError(cursor)
        return moment, row_id, direction
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise BadCursor() from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


HEX_DIGITS = "0123456789abcdef"


def _prefix_range(prefix: str) -> tuple[str, str] | None:
    """Bounds [low, high) holding every canonical task id (lowercase UUID) that starts with
    ``prefix``, so the unique index on task_id answers instead of a scan: LIKE alone cannot
    use it under a non-C collation.

    The successor of the last hex digit is taken among hex digits ("9" -> "a", "f" -> "g"), and
    trailing dashes are dropped, so the bounds hold in bytewise collations and in linguistic
    ones that ignore dashes alike. Other prefixes get no range (the LIKE still applies).
    """
    core = prefix.rstrip("-")
    if not core or any(c not in HEX_DIGITS and c != "-" for c in core):
        return None
    last = core[-1]
    successor = "g" if last == "f" else HEX_DIGITS[HEX_DIGITS.index(last) + 1]
    return core, core[:-1] + successor


def filtered(args: dict[str, Any]) -> Select[TaskExecution]:
    """The executions matching the list filters, unordered.

    Keys: status (list), task_type (name), task_name, queue, source, variable (ids), task_id
    (exact), task_id_prefix, created_from/created_to, started_from/started_to (aware datetimes;
    from is inclusive, to exclusive), arg (argument search terms, app.services.argument_search).
    """
    query = select(TaskExecution)
    column = TaskExecution
    if args.get("status"):
        query = query.where(column.status.in_(args["status"]))
    if args.get("task_type"):
        type_id = select(TaskType.id).where(TaskType.name == args["task_type"]).scalar_subquery()
        query = query.where(column.task_type_id == type_id)
    for name, attribute in (
        ("task_name", column.task_name),
        ("queue", column.queue),
        ("source", column.source_id),
        ("variable", column.variable_id),
        ("task_id", column.task_id),
    ):
        if args.get(name) is not None:
            query = query.where(attribute == args[name])
    if args.get("task_id_prefix"):
        prefix = args["task_id_prefix"]
        query = query.where(column.task_id.like(f"{_escape_like(prefix)}%", escape="\\"))
        bounds = _prefix_range(prefix)
        if bounds:
            query = query.where(column.task_id >= bounds[0], column.task_id < bounds[1])
    moments: tuple[tuple[str, InstrumentedAttribute[datetime | None], bool], ...] = (
        ("created_from", column.created_at, True),
        ("created_to", column.created_at, False),
        ("started_from", column.started_at, True),
        ("started_to", column.started_at, False),
    )
    for name, moment, newer in moments:
        if args.get(name) is not None:
            query = query.where(moment >= args[name] if newer else moment < args[name])
    if args.get("arg"):
        query = query.where(argument_search.condition(args["arg"], db.engine.dialect.name))
    return query


def _after(query: Select, created_at: datetime, row_id: int, newer: bool) -> Select:
    key = tuple_(TaskExecution.created_at, TaskExecution.id)
    bound = tuple_(literal(created_at, TaskExecution.created_at.type), literal(row_id))
    return query.where(key > bound if newer else key < bound)


def page(args: dict[str, Any], options: Sequence[ORMOption] = ()) -> dict[str, Any]:
    """One page of ``args["page_size"]`` rows, newest first, with next/previous cursors.

    Fetches one row more than the page to know whether another page follows: no COUNT.
    ``options`` (e.g. ``load_only``) shape how the rows are loaded.
    """
    size = args["page_size"]
    direction, keyset = "next", None
    if args.get("cursor"):
        created_at, row_id, direction = decode_cursor(args["cursor"])
        keyset = (created_at, row_id)
    if args.get("arg") and db.engine.dialect.name == "postgresql":
        rows = search_plan.searched(_ordered, args, options, keyset, direction, size + 1)
    else:
        query = _ordered(args, keyset, direction).options(*options).limit(size + 1)
        rows = list(db.session.scalars(query))
    more = len(rows) > size
    rows = rows[:size]
    if direction == "prev":
        rows.reverse()
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    has_next = more if direction == "next" else bool(args.get("cursor"))
    has_prev = bool(args.get("cursor")) if direction == "next" else more
    return {
        "items": rows,
        "page_size": size,
        "next_cursor": encode_cursor(last.created_at, last.id, "next")
        if has_next and last
        else None,
        "previous_cursor": (
            encode_cursor(first.created_at, first.id, "prev") if has_prev and first else None
        ),
    }


def _ordered(
    args: dict[str, Any], keyset: tuple[datetime, int] | None, direction: str
) -> Select[TaskExecution]:
    query = filtered(args)
    if keyset is not None:
        query = _after(query, *keyset, newer=direction == "prev")
    return query.order_by(*(NEWEST_FIRST if direction == "next" else OLDEST_FIRST))


def batches(
    args: dict[str, Any], columns: Sequence[Any], size: int = 2000
) -> Iterator[Sequence[Row[Any]]]:
    """Every matching row as tuples of ``columns``, newest first, ``size`` rows per query.

    Each batch is its own keyset query, so memory stays flat however many rows match; the last
    two columns must be ``created_at`` and ``id`` (the keyset).
    """
    base = filtered(args).with_only_columns(*columns).order_by(*NEWEST_FIRST).limit(size)
    query = base
    while True:
        rows = db.session.execute(query).all()
        if rows:
            yield rows
        if len(rows) < size:
            return
        created_at, row_id = rows[-1][-2], rows[-1][-1]
        query = _after(base, created_at, row_id, newer=False)


def by_task_id(task_id: str) -> TaskExecution | None:
    """The execution of ``task_id``, or None."""
    return db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == task_id))


def retried_by(task_id: str, limit: int = 100) -> list[TaskExecution]:
    """The executions sent as manual retries of ``task_id``, oldest first."""
    query = select(TaskExecution).where(TaskExecution.retry_of == task_id)
    return list(db.session.scalars(query.order_by(*OLDEST_FIRST).limit(limit)))


def children(task_id: str, limit: int = 100) -> list[TaskExecution]:
    """The other executions of the workflow ``task_id`` started (their root), oldest first."""
    query = select(TaskExecution).where(
        TaskExecution.root_id == task_id, TaskExecution.task_id != task_id
    )
    return list(db.session.scalars(query.order_by(*OLDEST_FIRST).limit(limit)))
