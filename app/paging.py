"""Keyset pages for every list: the rows after (or before) a key, never OFFSET.

An OFFSET page gets slower the deeper it goes and shifts when rows arrive; a keyset page costs
one index range scan wherever it is, and a row inserted meanwhile never moves the next one.
A list is ordered by its key columns, the last one unique (an id), so rows sharing a timestamp
still have one order. A :class:`Cursor` is the key of a page's edge row and a direction: the
next page reads on after it, the previous one back before it. Lists whose key is one column
put its value in their URLs (``before``/``after``); compound keys travel as the opaque token of
:func:`encode`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, literal, tuple_
from sqlalchemy.types import TypeDecorator

from app.bounds import MAX_BIGINT, utc_moment
from app.errors import DomainError
from app.extensions import db

BAD_CURSOR = _l("The cursor is not valid; start again from the first page.")
DIRECTIONS = {"next": True, "prev": False}


class BadCursor(DomainError):
    """A cursor that was not made by :func:`encode` (edited, cut or stale format)."""

    code = "bad_cursor"
    http_status = 400

    def __init__(self) -> None:
        super().__init__(str(BAD_CURSOR))


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the row keyed ``key`` in list order, or before it."""

    key: tuple[Any, ...]
    forward: bool = True  # True: the next page (after ``key``); False: the previous one

    @property
    def value(self) -> Any:
        """The key of a one-column keyset, as its lists put it in their URLs."""
        return self.key[0]


@dataclass(frozen=True)
class Page:
    """A page's rows and the cursors of the pages on either side of it."""

    rows: list[Any]  # in list order, whichever way the page was read
    next: Cursor | None  # None on the last page
    previous: Cursor | None  # None on the first page


def url_cursor(next_value: Any, previous_value: Any) -> Cursor | None:
    """The cursor of a one-column list's URL: the value its next-page link carries (``before``
    on a newest-first list, ``after`` on an A-Z one) or its previous-page link's, which wins."""
    if previous_value is not None:
        return Cursor((previous_value,), False)
    return None if next_value is None else Cursor((next_value,), True)


def seek(
    query: Select, key: Sequence[Any], cursor: Cursor | None = None, descending: bool = True
) -> Select:
    """``query`` from ``cursor`` on, ordered the way it is read: the list's order (``key``
    descending, or ascending) for a next page, the reverse for a previous one."""
    if cursor is not None:
        bounds = [literal(value, c.type) for c, value in zip(key, cursor.key, strict=True)]
        row: ColumnElement[Any] = key[0] if len(key) == 1 else tuple_(*key)
        bound: ColumnElement[Any] = bounds[0] if len(key) == 1 else tuple_(*bounds)
        query = query.where(row < bound if _down(cursor, descending) else row > bound)
    return query.order_by(None).order_by(*reading_order(key, cursor, descending))


def reading_order(
    columns: Sequence[Any], cursor: Cursor | None = None, descending: bool = True
) -> list[Any]:
    """The ORDER BY of :func:`seek` on ``columns`` (the key, or a subquery's copy of it)."""
    down = _down(cursor, descending)
    return [c.desc() if down else c.asc() for c in columns]


def _down(cursor: Cursor | None, descending: bool) -> bool:
    return descending == (cursor is None or cursor.forward)


def keyset_page(
    query: Select,
    key: Sequence[Any],
    size: int,
    cursor: Cursor | None = None,
    *,
    descending: bool = True,
    fetch: Callable[[Cursor | None, int], Sequence[Any]] | None = None,
    key_of: Callable[[Any], tuple[Any, ...]] | None = None,
) -> Page:
    """One page of ``size`` rows of ``query`` ordered by ``key``, from ``cursor`` on.

    Reads one row more than the page to know whether another follows: no COUNT. The rows are
    scalars for a select of one entity (or column), else result rows; ``fetch(cursor, limit)``
    replaces that read (returning the rows in :func:`seek`'s order), and ``key_of`` gives a
    row's key when it is not the row's attributes named like the key columns.
    """

    def read_rows(at: Cursor | None, limit: int) -> Sequence[Any]:
        return _rows(seek(query, key, at, descending).limit(limit))

    def attributes(row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, column.key) for column in key)

    read = list((fetch or read_rows)(cursor, size + 1))
    key_of = key_of or attributes
    rows, further = read[:size], len(read) > size
    forward = cursor is None or cursor.forward
    if not forward:
        rows.reverse()
    # Read onward: a page follows if a row was left over, and one precedes if we came from one.
    has_next, has_previous = (further, cursor is not None) if forward else (True, further)
    return Page(
        rows,
        Cursor(key_of(rows[-1]), True) if has_next and rows else None,
        Cursor(key_of(rows[0]), False) if has_previous and rows else None,
    )


def token_page(
    query: Select, key: Sequence[Any], size: int, token: str | None, **reading: Any
) -> dict[str, Any]:
    """:func:`keyset_page` from an opaque token (``reading`` passed on), answered as the JSON
    lists answer: the items, the page size and the next and previous tokens."""
    page = keyset_page(query, key, size, decode(token, key) if token else None, **reading)
    return {
        "items": page.rows,
        "page_size": size,
        "next_cursor": encode(page.next),
        "previous_cursor": encode(page.previous),
    }


def _rows(query: Select) -> list[Any]:
    result = db.session.execute(query)
    return list(result.scalars() if len(query.column_descriptions) == 1 else result.all())


def encode(cursor: Cursor | None) -> str | None:
    """The opaque token of ``cursor`` (URL-safe base64 of its key and direction)."""
    if cursor is None:
        return None
    values = [v.isoformat() if isinstance(v, datetime) else v for v in cursor.key]
    raw = json.dumps([*values, "next" if cursor.forward else "prev"], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, key: Sequence[Any]) -> Cursor:
    """The cursor of ``token`` for a list keyed by ``key``; :class:`BadCursor` when it is not
    one :func:`encode` made for such a key (each value is checked against its column's type, so
    an edited one never reaches the database)."""
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode(), altchars=b"-_", validate=True)
        *values, direction = json.loads(raw)
        if direction not in DIRECTIONS:
            raise ValueError(token)
        parsed = tuple(_value(v, _python_type(c)) for v, c in zip(values, key, strict=True))
        return Cursor(parsed, DIRECTIONS[direction])
    except (ValueError, TypeError, binascii.Error, OverflowError, RecursionError):
        raise BadCursor() from None


def _python_type(column: Any) -> type:
    kind = column.type
    return (kind.impl_instance if isinstance(kind, TypeDecorator) else kind).python_type


def _value(value: Any, kind: type) -> Any:
    if kind is datetime and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None or moment.isoformat() != value:  # aware, and as encode wrote it
            raise ValueError(value)
        utc_moment(moment)  # an edited cursor's year 1 or 9999 must not reach the database
        return moment
    if kind is int and type(value) is int and abs(value) <= MAX_BIGINT:
        return value
    if kind is str and isinstance(value, str) and "\x00" not in value:
        return value
    raise ValueError(value)
