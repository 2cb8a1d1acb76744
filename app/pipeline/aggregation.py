"""Aggregation: totals per country and month, recomputed per variable from its data points."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, literal, select

from app.extensions import db
from app.models import CountryMonthTotal, DataPoint, Variable
from app.models.types import utcnow


def country_month_totals(variable_id: int | None = None) -> dict[str, Any]:
    """Rebuild the totals of one variable (or of every variable with data); the caller commits.

    A rebuild (delete, then insert from one grouped select) rather than an incremental update:
    reprocessed or corrected points then never leave stale totals behind.
    """
    if variable_id is None:
        variable_ids = list(db.session.scalars(select(DataPoint.variable_id).distinct()))
    else:
        variable_ids = [variable_id] if db.session.get(Variable, variable_id) else []
    rows = 0
    for vid in variable_ids:
        db.session.execute(delete(CountryMonthTotal).where(CountryMonthTotal.variable_id == vid))
        grouped = (
            select(
                DataPoint.source_id,
                DataPoint.variable_id,
                DataPoint.iso3,
                DataPoint.month,
                func.sum(DataPoint.value),
                func.count(),
                literal(utcnow(), CountryMonthTotal.computed_at.type),
            )
            .where(DataPoint.variable_id == vid)
            .group_by(DataPoint.source_id, DataPoint.variable_id, DataPoint.iso3, DataPoint.month)
        )
        db.session.execute(
            insert(CountryMonthTotal).from_select(
                ["source_id", "variable_id", "iso3", "month", "total", "points", "computed_at"],
                grouped,
            )
        )
        # Counted, not taken from rowcount, which drivers do not all report for INSERT ... SELECT.
        rows += (
            db.session.scalar(select(func.count()).where(CountryMonthTotal.variable_id == vid)) or 0
        )
    return {"variables": variable_ids, "rows": rows}
