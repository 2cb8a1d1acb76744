"""Processing: validate IDMC-shaped records of a raw payload and upsert them as data points.

Accepted shapes: a JSON list of records, or an object with a ``results`` list (IDMC's paginated
endpoints). A record needs a country name (``country``, ``location_name`` or ``name``), an ISO3
code (``iso3``), a date (``displacement_date``, ``displacement_start_date``, ``date`` or
``year``) and a non-negative number (``figure`` or ``value``). Invalid records are listed, not
stored; a payload that is not such JSON at all raises ``DataValidationError`` (never retried).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from app.extensions import db
from app.models import DataPoint, RawPayload
from app.models.types import utcnow
from app.tracking import DataValidationError

ISO3 = re.compile(r"^[A-Z]{3}$")
NAME_KEYS = ("country", "location_name", "name")
DATE_KEYS = ("displacement_date", "displacement_start_date", "date")
VALUE_KEYS = ("figure", "value")
MAX_LISTED_INVALID = 100


def records_of(body: str) -> list[Any]:
    """The records of a payload body, or DataValidationError."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise DataValidationError(_("The payload is not JSON: %(e)s", e=error)) from None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if not isinstance(data, list):
        raise DataValidationError(_("The payload holds no list of records."))
    return data


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((record[k] for k in keys if record.get(k) not in (None, "")), None)


def _parse_date(record: dict[str, Any]) -> date | None:
    raw = _first(record, DATE_KEYS)
    if raw is None and record.get("year") not in (None, ""):
        raw = f"{record['year']}-12-31"  # yearly figures count at the end of their year
    try:
        return date.fromisoformat(str(raw)[:10]) if raw is not None else None
    except ValueError:
        return None


def normalize(record: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """One record as data-point values, or the list of what is wrong with it."""
    if not isinstance(record, dict):
        return None, ["not an object"]
    errors = []
    name = _first(record, NAME_KEYS)
    if not isinstance(name, str) or not name.strip():
        errors.append("missing location name")
    iso3 = str(record.get("iso3") or "").strip().upper()
    if not ISO3.match(iso3):
        errors.append(f"invalid ISO3 code {record.get('iso3')!r}")
    day = _parse_date(record)
    if day is None:
        errors.append("missing or invalid date")
    raw_value = _first(record, VALUE_KEYS)
    try:
        value = float(raw_value)
        if value != value or value < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors.append(f"invalid value {raw_value!r}")
    if errors or day is None:  # day is None only with an error listed
        return None, errors
    external = record.get("id")
    if external in (None, ""):
        canonical = json.dumps(record, sort_keys=True, default=str).encode()
        external = "sha256:" + hashlib.sha256(canonical).hexdigest()[:57]
    return {
        "external_id": str(external)[:64],
        "location_name": name.strip()[:200],
        "iso3": iso3,
        "date": day,
        "month": day.replace(day=1),
        "value": value,
    }, []


def process(raw_id: int) -> dict[str, Any]:
    """Normalize the payload's records into data points (insert or update; the caller commits)."""
    raw = db.session.get(RawPayload, raw_id)
    if raw is None:
        raise DataValidationError(_("No raw payload %(id)s.", id=raw_id))
    valid: dict[str, dict[str, Any]] = {}
    invalid: list[dict[str, Any]] = []
    records = records_of(raw.body)
    for index, record in enumerate(records):
        values, errors = normalize(record)
        if values is None:
            ident = record.get("id") if isinstance(record, dict) else None
            invalid.append({"index": index, "id": ident, "errors": errors})
        else:
            valid[values["external_id"]] = values  # a repeated id: the last record wins
    inserted, updated = upsert(raw, valid)
    raw.processed_at = utcnow()
    return {
        "raw_id": raw.id,
        "source_id": raw.source_id,
        "variable_id": raw.variable_id,
        "records": len(records),
        "inserted": inserted,
        "updated": updated,
        "invalid_count": len(invalid),
        "invalid": invalid[:MAX_LISTED_INVALID],
    }


def upsert(raw: RawPayload, valid: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Insert new data points and update known ones (matched by variable and external id)."""
    inserted = updated = 0
    ids = list(valid)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        existing = {
            p.external_id: p
            for p in db.session.scalars(
                select(DataPoint).where(
                    DataPoint.variable_id == raw.variable_id, DataPoint.external_id.in_(chunk)
                )
            )
        }
        for external_id in chunk:
            values = valid[external_id]
            point = existing.get(external_id)
            if point is None:
                owner = {"source_id": raw.source_id, "variable_id": raw.variable_id}
                db.session.add(DataPoint(**owner, raw_id=raw.id, **values))
                inserted += 1
                continue
            if point.location_name != values["location_name"]:
                point.matched_iso3 = None  # renamed: match it again
            for key, value in values.items():
                setattr(point, key, value)
            point.raw_id = raw.id
            updated += 1
    db.session.flush()
    return inserted, updated
