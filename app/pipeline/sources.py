"""The built-in IDMC source and its variables, created on first use."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from app.database import dialect_insert
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
    """The source ``code``; the IDMC source (and its variables) is created when missing.

    Pipelines sent together on a fresh database all find it missing at once: each inserts it
    with ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite) and then reads it, so the one that
    loses the race waits for the winner's row instead of failing on the unique code.
    """
    source = db.session.scalar(select(Source).where(Source.code == code))
    if source is not None or code != "idmc":
        return source
    db.session.execute(
        dialect_insert(Source.__table__)
        .values(
            code="idmc",
            name="Internal Displacement Monitoring Centre (IDMC)",
            source_type="api",
            base_url=current_app.config["IDMC_API_URL"],
            description_en="IDMC displacement data (public API).",
        )
        .on_conflict_do_nothing()
    )
    source = db.session.scalars(
        select(Source).where(Source.code == code).execution_options(populate_existing=True)
    ).one()
    db.session.execute(
        dialect_insert(Variable.__table__)
        .values([{"source_id": source.id, **values} for values in IDMC_VARIABLES])
        .on_conflict_do_nothing()
    )
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
