"""Statistics roll-ups, read by the API and the dashboard instead of the execution table: hourly,
kept by the recorder as executions finish (days are summed from them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime

# Upper bounds (seconds) of the duration histogram buckets, from 5 ms to 4 h (tasks run from
# milliseconds to the two-hour time limit); the last bucket is unbounded. They include the
# earlier bounds (0.1 s to 30 min), so a migration could move the counts kept under them.
DURATION_BOUNDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
)  # fmt: skip
HISTOGRAM_COLUMNS = tuple(f"le_{i:02d}" for i in range(len(DURATION_BOUNDS) + 1))


class ExecutionHourly(Model):
    """Executions of one task (type and name) that became final in one UTC hour.

    Kept current by the recorder (app.tracking.apply) in the transaction that stores the final
    status, so a batch applied twice is counted once. ``le_NN`` count durations per bucket of
    ``DURATION_BOUNDS`` (not cumulative); the Prometheus histogram comes from them, and the p95
    estimate when a window holds too many executions to read their durations.
    """

    __tablename__ = "execution_stats_hourly"
    __table_args__ = (PrimaryKeyConstraint("hour", "task_type", "task_name"),)

    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    task_type: Mapped[str] = mapped_column(String(64), default="")
    task_name: Mapped[str] = mapped_column(String(255), default="")
    success: Mapped[int] = mapped_column(Integer, default=0)
    failure: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    duration_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_sum: Mapped[float] = mapped_column(Float, default=0.0)
    le_00: Mapped[int] = mapped_column(Integer, default=0)
    le_01: Mapped[int] = mapped_column(Integer, default=0)
    le_02: Mapped[int] = mapped_column(Integer, default=0)
    le_03: Mapped[int] = mapped_column(Integer, default=0)
    le_04: Mapped[int] = mapped_column(Integer, default=0)
    le_05: Mapped[int] = mapped_column(Integer, default=0)
    le_06: Mapped[int] = mapped_column(Integer, default=0)
    le_07: Mapped[int] = mapped_column(Integer, default=0)
    le_08: Mapped[int] = mapped_column(Integer, default=0)
    le_09: Mapped[int] = mapped_column(Integer, default=0)
    le_10: Mapped[int] = mapped_column(Integer, default=0)
    le_11: Mapped[int] = mapped_column(Integer, default=0)
    le_12: Mapped[int] = mapped_column(Integer, default=0)
    le_13: Mapped[int] = mapped_column(Integer, default=0)
    le_14: Mapped[int] = mapped_column(Integer, default=0)
    le_15: Mapped[int] = mapped_column(Integer, default=0)
    le_16: Mapped[int] = mapped_column(Integer, default=0)
    le_17: Mapped[int] = mapped_column(Integer, default=0)
    le_18: Mapped[int] = mapped_column(Integer, default=0)
    le_19: Mapped[int] = mapped_column(Integer, default=0)
    le_20: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"<ExecutionHourly {self.hour} {self.task_name}>"
