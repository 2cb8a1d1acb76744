"""How a page of an argument search is read on PostgreSQL, at a cost bounded whatever the
terms match.

The planner cannot tell how often a jsonpath term matches, nor how it correlates with the other
filters, and its two plans fail in opposite cases: reading the list in keyset order and testing
each row (about 4 us a row, the arguments parsed) is fast for a common term and reads the whole
table for a rare one; the GIN indexes (about 10 us a match, one heap page each) are fast for a
rare term and fetch every match of a common one before sorting them.

So the search measures instead of guessing: it tests the next ``PROBE`` rows in order (a page of
a common term is among them). When they hold less than a page and more rows remain, the share
of matches seen says which plan is cheaper for the rest: going on in order, through a window
sized for the page and bounded, or the indexes, with the ordered scan forbidden for that one
query. The worst case pays both, each about as much as the better plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.orm.interfaces import ORMOption

from app.extensions import db
from app.models import TaskExecution
from app.paging import Cursor, reading_order
from app.services import argument_search

PROBE = 2_000  # rows tested in order first
MAX_WINDOW = 50_000  # rows a second ordered window may read
ROW_COST, MATCH_COST = 4.0, 10.0  # microseconds: a row tested in order, a match from the index

Ordered = Callable[[dict[str, Any], Cursor | None], Select[TaskExecution]]


def _order(table: Any, cursor: Cursor | None) -> list[Any]:
    return reading_order((table.c.created_at, table.c.id), cursor)


def _window(
    ordered: Ordered, args: dict[str, Any], cursor: Cursor | None, size: int, want: int
) -> tuple[list[int], Cursor | None]:
    """The ids of the first ``want`` matches among the next ``size`` rows from ``cursor`` in
    keyset order, and a cursor after the ``size``-th row (None when fewer rows remain: the
    matches are all)."""
    E = TaskExecution
    rows = (
        ordered({**args, "arg": None}, cursor)
        .with_only_columns(E.id, E.created_at, E.args, E.kwargs)
        .limit(size)
        .subquery()
    )
    hit = argument_search.condition(args["arg"], "postgresql", (rows.c.args, rows.c.kwargs))
    numbered = select(
        rows.c.id,
        rows.c.created_at,
        hit.label("hit"),
        func.row_number().over(order_by=_order(rows, cursor)).label("n"),
    ).subquery()
    # The size-th row comes back even when it does not match: it says more rows remain.
    query = (
        select(numbered.c.id, numbered.c.created_at, numbered.c.hit, numbered.c.n)
        .where(or_(numbered.c.hit, numbered.c.n == size))
        .order_by(*_order(numbered, cursor))
        .limit(want + 1)
    )
    seen = db.session.execute(query).all()
    forward = cursor is None or cursor.forward
    last = next((Cursor((r.created_at, r.id), forward) for r in seen if r.n == size), None)
    return [r.id for r in seen if r.hit][:want], last


def _without(setting: str, query: Select) -> list[TaskExecution]:
    """``query``'s rows with the planner setting ``setting`` off for it alone."""
    previous = db.session.scalar(select(func.current_setting(setting)))
    db.session.execute(select(func.set_config(setting, "off", True)))
    try:
        return list(db.session.scalars(query))
    finally:
        db.session.execute(select(func.set_config(setting, previous, True)))


def _table_rows() -> float:
    estimate = db.session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = 'task_executions'::regclass")
    )
    return max(float(estimate or 0), 1.0)


def searched(
    ordered: Ordered,
    args: dict[str, Any],
    options: Sequence[ORMOption],
    cursor: Cursor | None,
    limit: int,
) -> list[TaskExecution]:
    """The first ``limit`` executions matching ``args`` (argument terms included) from
    ``cursor`` on, as ``ordered(args, cursor)`` orders them."""
    ids, last = _window(ordered, args, cursor, PROBE, limit)
    if len(ids) < limit and last is not None and ids:
        share = len(ids) / PROBE
        needed = (limit - len(ids)) / share  # rows still to read in order, at this share
        if needed <= MAX_WINDOW and needed * ROW_COST <= share * _table_rows() * MATCH_COST:
            more, last = _window(ordered, args, last, int(needed * 2) + 1, limit)
            ids += more[: limit - len(ids)]
    if len(ids) < limit and last is not None:
        query = ordered(args, cursor).options(*options).limit(limit)
        return _without("enable_indexscan", query)
    if not ids:
        return []
    E = TaskExecution
    rows = {r.id: r for r in db.session.scalars(select(E).where(E.id.in_(ids)).options(*options))}
    return [rows[i] for i in ids]
