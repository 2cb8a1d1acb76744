"""The built-in IDMC source and its variables, created on first use."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Source, Variable

# IDMC's public API (https://helix-tools-api.idmcdb.org/external-api/): internal displacement
# updates (IDUs) of the last 180 days, one record per displacement figure.
IDMC_VARIABLES = [
    {
        "code": "idu_new_displacements",
        "name": "New displacements (IDMC internal displacement updates, last 180 days)",
        "endpoint_path": "/idus/last-180-days/",
    },
]


def ensure_source(code: str) -> Source | None:
    """The source ``code``; the IDMC source (and its variables) is created when missing."""
    source = db.session.scalar(select(Source).where(Source.code == code))
    if source is not None or code != "idmc":
        return source
    source = Source(
        code="idmc",
        name="Internal Displacement Monitoring Centre (IDMC)",
        source_type="api",
        base_url=current_app.config["IDMC_API_URL"],
        description_en="IDMC displacement data (public API).",
    )
    db.session.add(source)
    for values in IDMC_VARIABLES:
        db.session.add(Variable(source=source, **values))
    db.session.flush()
    return source


def active_variables(source: Source) -> list[Variable]:
    """The source's active variables, in id order."""
    return list(
        db.session.scalars(
            select(Variable)
            .where(Variable.source_id == source.id, Variable.is_active.is_(True))
            .order_by(Variable.id)
        )
    )
