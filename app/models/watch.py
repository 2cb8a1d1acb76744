"""What the schedule watch last concluded about each schedule, and which alert it raised.

The state shown on the pages is assessed live (app.watch.facts); this row is the watch's memory
between checks: since when the schedule is in its state and which state and occurrence it
already alerted about, so an alert is raised once per schedule and occurrence, never every check.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow


class ScheduleWatch(Model):
    __tablename__ = "schedule_watch"

    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("scheduled_tasks.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    occurrence: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "<state>:<occurrence ms>" of the last alert raised (the resolved note clears it).
    alerted: Mapped[str | None] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ScheduleWatch {self.schedule_id} {self.state}>"
