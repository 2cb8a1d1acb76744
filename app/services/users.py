"""Users: creation, passwords, roles, sign-in checks and the first-run admin."""

from __future__ import annotations

import re
import secrets

from flask_babel import gettext as _
from sqlalchemy import Select, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import Conflict, InvalidInput, NotFound
from app.extensions import db
from app.models import Role, User
from app.models.types import utcnow
from app.services.audit import record_audit

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
FIRST_ADMIN_NAME = "admin"
# Checked when the username is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        message = _(
            "Unknown role %(role)s (choose one of: %(choices)s).", role=value, choices=choices
        )
        raise InvalidInput(message, {"role": [message]}) from None


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        message = _("A password needs at least %(count)d characters.", count=MIN_PASSWORD_LENGTH)
        raise InvalidInput(message, {"password": [message]})
    return password


def find_user(username: str) -> User | None:
    if "\x00" in username:
        return None  # no stored name has one, and PostgreSQL refuses NUL in a query parameter
    return db.session.scalar(select(User).where(User.username == username))


def get_user(username: str) -> User:
    user = find_user(username)
    if user is None:
        message = _("No user named %(username)s.", username=username)
        raise NotFound(message, {"username": [message]})
    return user


def users_query() -> Select[User]:
    return select(User).order_by(User.username)


def create_user(username: str, role: Role | str, password: str, actor: User | None = None) -> User:
    """Add a user with a hashed password; the caller commits."""
    username = username.strip()
    if not USERNAME_PATTERN.match(username):
        message = _("A username is 1 to 64 letters, digits, or . _ @ - characters.")
        raise InvalidInput(message, {"username": [message]})
    role = parse_role(role) if isinstance(role, str) else role
    validate_password(password)
    if find_user(username) is not None:
        message = _("A user named %(username)s already exists.", username=username)
        raise Conflict(message, {"username": [message]})
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    record_audit("user.create", "user", user.username, details={"role": role.value}, actor=actor)
    return user


def set_password(user: User, password: str, actor: User | None = None) -> None:
    """Replace the password (which also ends the user's other sessions)."""
    user.set_password(validate_password(password))
    record_audit("user.set_password", "user", user.username, actor=actor)


def set_role(user: User, role: Role | str, actor: User | None = None) -> None:
    role = parse_role(role) if isinstance(role, str) else role
    if role == user.role:
        return
    if user.role == Role.ADMIN and count_admins() <= 1:
        message = _(
            "%(username)s is the last admin; make someone else admin first.", username=user.username
        )
        raise Conflict(message, {"role": [message]})
    previous = user.role
    user.role = role
    record_audit(
        "user.set_role",
        "user",
        user.username,
        details={"from": previous.value, "to": role.value},
        actor=actor,
    )


def authenticate(username: str, password: str) -> User | None:
    """The active user with this name and password, or None (same cost either way)."""
    user = find_user(username.strip())
    if user is None or not user.is_active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.check_password(password):
        return None
    user.last_login_at = utcnow()
    return user


def count_admins() -> int:
    return (
        db.session.scalar(select(func.count()).where(User.role == Role.ADMIN, User.is_active)) or 0
    )


def ensure_admin(password: str | None) -> tuple[User, str | None] | None:
    """Create the user ``admin`` when no admin exists at all.

    Returns None when an admin already exists; otherwise the new user and the generated password
    (None when ``password`` was given).
    """
    if db.session.scalar(select(func.count()).where(User.role == Role.ADMIN)):
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(15)
    return create_user(FIRST_ADMIN_NAME, Role.ADMIN, password), generated
