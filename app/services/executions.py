"""Execution queries shared by the JSON API and the pages: filters, keyset pages, batches.

Pages are cut by keyset on (created_at, id), never OFFSET, so a page 10,000 rows deep costs the
same as the first one (the ``ix_task_executions_created_at`` index serves both directions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.interfaces import ORMOption

from app.extensions import db
from app.models import TaskExecution, TaskType
from app.paging import Cursor, seek, token_page
from app.services import argument_search, search_plan

KEY = (TaskExecution.created_at, TaskExecution.id)
NEWEST_FIRST = (TaskExecution.created_at.desc(), TaskExecution.id.desc())
OLDEST_FIRST = (TaskExecution.created_at.asc(), TaskExecution.id.asc())


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
        query = query.where(column.task_id.startswith(prefix, autoescape=True))
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


def page(args: dict[str, Any], options: Sequence[ORMOption] = ()) -> dict[str, Any]:
    """One page of ``args["page_size"]`` rows, newest first, with next/previous cursors.

    ``options`` (e.g. ``load_only``) shape how the rows are loaded. An argument search on
    PostgreSQL reads its page through :mod:`app.services.search_plan`.
    """
    fetch = None
    if args.get("arg") and db.engine.dialect.name == "postgresql":

        def fetch(cursor: Cursor | None, limit: int) -> list[TaskExecution]:
            return search_plan.searched(_ordered, args, options, cursor, limit)

    query = filtered(args).options(*options)
    return token_page(query, KEY, args["page_size"], args.get("cursor"), fetch=fetch)


def _ordered(args: dict[str, Any], cursor: Cursor | None) -> Select[TaskExecution]:
    return seek(filtered(args), KEY, cursor)


def batches(
    args: dict[str, Any], columns: Sequence[Any], size: int = 2000
) -> Iterator[Sequence[Row[Any]]]:
    """Every matching row as tuples of ``columns``, newest first, ``size`` rows per query.

    Each batch is its own keyset query, so memory stays flat however many rows match; the last
    two columns must be ``created_at`` and ``id`` (the keyset).
    """
    base = filtered(args).with_only_columns(*columns).limit(size)
    query = seek(base, KEY)
    while True:
        rows = db.session.execute(query).all()
        if rows:
            yield rows
        if len(rows) < size:
            return
        query = seek(base, KEY, Cursor(tuple(rows[-1][-2:])))


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
