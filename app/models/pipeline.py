"""Data-pipeline entities that executions link to: sources and their variables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.extensions import Model
from app.models.translated import TranslatedDescription
from app.models.types import UTCDateTime, utcnow
from app.models.validation import validate_identifier


class Source(TranslatedDescription, Model):
    """An external data provider (IDMC, a hazard feed, ...)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_type: Mapped[str] = mapped_column(String(50), default="api")
    base_url: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    variables: Mapped[list[Variable]] = relationship(back_populates="source")

    @validates("code")
    def _check_code(self, _key: str, code: str) -> str:
        return validate_identifier(code, "code")

    def __repr__(self) -> str:
        return f"<Source {self.code}>"


class Variable(TranslatedDescription, Model):
    """A measured quantity of a source (new displacements, stock of IDPs, ...)."""

    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("source_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    endpoint_path: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship(back_populates="variables")

    @validates("code")
    def _check_code(self, _key: str, code: str) -> str:
        return validate_identifier(code, "code")

    def __repr__(self) -> str:
        return f"<Variable {self.code}>"
