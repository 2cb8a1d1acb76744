"""TaskType: the category of a task (retrieval, processing, ...), spec 7.3."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import String, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, validates

from app.errors import Conflict
from app.extensions import Model
from app.models.translated import TranslatedDescription
from app.models.types import UTCDateTime, utcnow
from app.models.validation import validate_identifier


class TaskType(TranslatedDescription, Model):
    __tablename__ = "task_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @validates("name")
    def _check_name(self, _key: str, name: str) -> str:
        return validate_identifier(name, "name")

    def __repr__(self) -> str:
        return f"<TaskType {self.name}>"


@event.listens_for(TaskType, "before_insert")
def _refuse_duplicate_name(_mapper: Any, connection: Connection, task_type: TaskType) -> None:
    if connection.scalar(select(TaskType.id).where(TaskType.name == task_type.name)) is not None:
        message = _("A task type named %(name)s already exists.", name=task_type.name)
        raise Conflict(message, {"name": [message]})
