"""Data-pipeline tables: raw payloads as fetched, normalized data points, country-month totals."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import BigIntPK, UTCDateTime, utcnow

# DataPoint has a column named ``date``, which shadows the type inside its class body.
Day = date


class RawPayload(Model):
    """One HTTP fetch of a variable's endpoint, kept verbatim with its SHA-256 checksum."""

    __tablename__ = "raw_payloads"
    __table_args__ = (Index("ix_raw_payloads_variable_fetched", "variable_id", "fetched_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    variable_id: Mapped[int] = mapped_column(ForeignKey("variables.id", ondelete="RESTRICT"))
    url: Mapped[str] = mapped_column(String(1000))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64), index=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    task_id: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DataPoint(Model):
    """A normalized observation: a value of a variable for a location (country) on a date."""

    __tablename__ = "data_points"
    __table_args__ = (
        UniqueConstraint("variable_id", "external_id"),
        Index("ix_data_points_variable_iso3_month", "variable_id", "iso3", "month"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    variable_id: Mapped[int] = mapped_column(ForeignKey("variables.id", ondelete="RESTRICT"))
    raw_id: Mapped[int | None] = mapped_column(
        ForeignKey("raw_payloads.id", ondelete="SET NULL"), index=True
    )
    # The record's own id at the source (or a hash of the record): reprocessing is idempotent.
    external_id: Mapped[str] = mapped_column(String(64))
    location_name: Mapped[str] = mapped_column(String(200))
    iso3: Mapped[str] = mapped_column(String(3))
    date: Mapped[Day] = mapped_column(Date)
    month: Mapped[Day] = mapped_column(Date)  # first day of ``date``'s month, for aggregation
    value: Mapped[float] = mapped_column(Float)
    # Set by location matching: the gazetteer's ISO3 for ``location_name`` (None: unmatched yet).
    matched_iso3: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CountryMonthTotal(Model):
    """Derived statistic: the sum and count of a variable's data points per country and month."""

    __tablename__ = "country_month_totals"
    __table_args__ = (UniqueConstraint("variable_id", "iso3", "month"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    variable_id: Mapped[int] = mapped_column(ForeignKey("variables.id", ondelete="RESTRICT"))
    iso3: Mapped[str] = mapped_column(String(3))
    month: Mapped[date] = mapped_column(Date)
    total: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
