"""The weekly data validation: gaps, duplicates and outliers in the stored data points."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import CountryMonthTotal, DataPoint, Source, Variable

LISTED = 50  # items listed per finding; the counts are always complete


def _months_between(first: date, last: date) -> list[date]:
    months, current = [], first
    while current <= last:
        months.append(current)
        current = current.replace(
            year=current.year + current.month // 12, month=current.month % 12 + 1
        )
    return months


def gaps(variable_id: int) -> list[dict[str, Any]]:
    """Countries with months missing between their first and last month of data."""
    by_country: dict[str, set[date]] = defaultdict(set)
    for iso3, month in db.session.execute(
        select(CountryMonthTotal.iso3, CountryMonthTotal.month).where(
            CountryMonthTotal.variable_id == variable_id
        )
    ):
        by_country[iso3].add(month)
    found = []
    for iso3, months in sorted(by_country.items()):
        missing = [m for m in _months_between(min(months), max(months)) if m not in months]
        if missing:
            found.append({"iso3": iso3, "missing_months": [m.isoformat()[:7] for m in missing]})
    return found


def duplicates(variable_id: int) -> list[dict[str, Any]]:
    """Points with different ids but the same country, date and value: likely double entries."""
    rows = db.session.execute(
        select(DataPoint.iso3, DataPoint.date, DataPoint.value, func.count())
        .where(DataPoint.variable_id == variable_id)
        .group_by(DataPoint.iso3, DataPoint.date, DataPoint.value)
        .having(func.count() > 1)
        .order_by(DataPoint.iso3, DataPoint.date)
    )
    return [
        {"iso3": iso3, "date": day.isoformat(), "value": value, "count": count}
        for iso3, day, value, count in rows
    ]


def outliers(variable_id: int, threshold: float) -> list[dict[str, Any]]:
    """Points whose robust z-score (distance to the median in scaled MADs) exceeds ``threshold``."""
    points = list(
        db.session.execute(
            select(DataPoint.external_id, DataPoint.iso3, DataPoint.date, DataPoint.value).where(
                DataPoint.variable_id == variable_id
            )
        )
    )
    if len(points) < 5:
        return []
    values = [p.value for p in points]
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values) * 1.4826
    if mad == 0:
        return []
    found = []
    for point in points:
        score = abs(point.value - median) / mad
        if score > threshold:
            found.append(
                {
                    "id": point.external_id,
                    "iso3": point.iso3,
                    "date": point.date.isoformat(),
                    "value": point.value,
                    "score": round(score, 1),
                }
            )
    return sorted(found, key=lambda item: -item["score"])


def validate(source: str | None = None) -> dict[str, Any]:
    """Check every active variable (of ``source`` if given); returns a summary with counts."""
    query = select(Variable).join(Source).where(Variable.is_active.is_(True))
    if source:
        query = query.where(Source.code == source)
    threshold = current_app.config["OUTLIER_THRESHOLD"]
    report: dict[str, Any] = {"variables": [], "gaps": 0, "duplicates": 0, "outliers": 0}
    for variable in db.session.scalars(query.order_by(Variable.id)):
        found = {
            "gaps": gaps(variable.id),
            "duplicates": duplicates(variable.id),
            "outliers": outliers(variable.id, threshold),
        }
        points = db.session.scalar(select(func.count()).where(DataPoint.variable_id == variable.id))
        entry: dict[str, Any] = {"variable_id": variable.id, "code": variable.code}
        entry["points"] = points
        for kind, items in found.items():
            report[kind] += len(items)
            entry[f"{kind}_count"] = len(items)
            entry[kind] = items[:LISTED]
        report["variables"].append(entry)
    report["ok"] = report["gaps"] == report["duplicates"] == report["outliers"] == 0
    return report
