"""Keyset pages over a descending id, in both directions (``before`` older, ``after`` newer).

OFFSET pages get slower the deeper they go and shift when rows arrive; a keyset page costs one
index range scan wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select

from app.extensions import db


@dataclass(frozen=True)
class IdPage:
    rows: list[Any]
    older: int | None  # the ``before`` cursor of the next (older) page
    newer: int | None  # the ``after`` cursor of the previous (newer) page


def id_page(
    query: Select[Any], column: Any, size: int, before: int | None = None, after: int | None = None
) -> IdPage:
    """One page of ``query`` (ordered by ``column`` descending) before or after an id."""
    if after is not None:
        rows = list(
            db.session.scalars(
                query.where(column > after).order_by(None).order_by(column.asc()).limit(size + 1)
            )
        )
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return IdPage(rows, rows[-1].id if rows else None, rows[0].id if more_newer else None)
    if before is not None:
        query = query.where(column < before)
    rows = list(db.session.scalars(query.limit(size + 1)))
    more_older = len(rows) > size
    rows = rows[:size]
    return IdPage(
        rows,
        rows[-1].id if more_older else None,
        rows[0].id if before is not None and rows else None,
    )
