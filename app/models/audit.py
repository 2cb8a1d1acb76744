"""AuditEntry: one operator action (who, when, what, on which target, with what outcome)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import BigIntPK, UTCDateTime, utcnow
from app.models.user import User


class AuditEntry(Model):
    __tablename__ = "audit_entries"
    __table_args__ = (
        # The audit page pages by id (newest first), optionally filtered by action or actor.
        Index("ix_audit_entries_action_id", "action", "id"),
        Index("ix_audit_entries_actor_id_id", "actor_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Kept beside the key so the entry still names its actor after the user is deleted.
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    details: Mapped[Any | None] = mapped_column(JSON)

    actor: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<AuditEntry {self.action} {self.target_type}:{self.target_id} {self.outcome}>"
