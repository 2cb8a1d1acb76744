"""Daily roll-up of executions per task type and name, read by the API and the dashboard."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import BigIntPK, UTCDateTime, utcnow


class DailyTaskStatistic(db.Model):
    """Executions created on ``day`` (UTC) of one task type and name: counts and resource use."""

    __tablename__ = "daily_task_statistics"
    __table_args__ = (UniqueConstraint("day", "task_type", "task_name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    task_type: Mapped[str] = mapped_column(String(64))  # "" when the type is unknown
    task_name: Mapped[str] = mapped_column(String(255))
    total: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    started: Mapped[int] = mapped_column(Integer, default=0)
    success: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[int] = mapped_column(Integer, default=0)
    retry: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    avg_duration_seconds: Mapped[float | None] = mapped_column(Float)
    p95_duration_seconds: Mapped[float | None] = mapped_column(Float)
    avg_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    total_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    avg_peak_memory_bytes: Mapped[float | None] = mapped_column(Float)
    max_peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
