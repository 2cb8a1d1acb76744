"""User: a person (or a service account) who signs in, with one role."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Boolean, Enum, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow


class Role(enum.StrEnum):
    """Roles in increasing order of power; each one can do everything the previous one can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, minimum: Role) -> bool:
        """Whether this role is at least ``minimum``."""
        return self.rank >= minimum.rank


role_type = Enum(
    Role,
    name="user_role",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda roles: [r.value for r in roles],
)


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(role_type, default=Role.VIEWER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped at sign-out: every session cookie issued before it stops working on the server.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def set_password(self, password: str) -> None:
        method = current_app.config.get("PASSWORD_HASH_METHOD") if has_app_context() else None
        self.password_hash = generate_password_hash(password, method=method or "scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def session_key(self) -> str:
        """Changes with the password and at sign-out, so a new password ends every other
        session and a cookie saved before sign-out no longer signs anyone in."""
        material = f"{self.password_hash}:{self.session_generation or 0}"
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def end_sessions(self) -> None:
        """End every session of this user (the caller commits)."""
        self.session_generation = (self.session_generation or 0) + 1

    def get_id(self) -> str:
        return f"{self.id}:{self.session_key}"

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"
