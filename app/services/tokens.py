"""API tokens: issued once in clear, stored as a SHA-256 hash, looked up by that hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select

from app.bounds import parse_id
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import ApiToken, User
from app.models.types import utcnow
from app.services.audit import record_audit

TOKEN_SCHEME = "ewas"
# A token seen again within this interval does not rewrite its last-used time.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def hash_token(plaintext: str) -> str:
    # A plain digest is enough: the token has 256 bits of entropy, so nothing can be guessed.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(user: User, name: str = "", actor: User | None = None) -> IssuedToken:
    """Issue a token for ``user``; the caller commits and shows ``plaintext`` once."""
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        message = _("A token name has at most %(count)d characters.", count=MAX_NAME_LENGTH)
        raise InvalidInput(message, {"name": [message]})
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(user=user, name=name, prefix=prefix, token_hash=hash_token(plaintext))
    db.session.add(token)
    db.session.flush()
    record_audit(
        "token.create",
        "api_token",
        token.prefix,
        details={"user": user.username, "name": name},
        actor=actor,
    )
    return IssuedToken(token, plaintext)


def find_token(id_or_prefix: str) -> ApiToken:
    """A token by its numeric id or its prefix."""
    value = id_or_prefix.strip().replace("\x00", "")
    conditions = [ApiToken.prefix == value]
    token_id = parse_id(value)
    if token_id is not None:
        conditions.append(ApiToken.id == token_id)
    token = db.session.scalar(select(ApiToken).where(or_(*conditions)))
    if token is None:
        message = _("No API token with id or prefix %(value)s.", value=value)
        raise NotFound(message, {"token": [message]})
    return token


def revoke_token(token: ApiToken, actor: User | None = None) -> bool:
    """Revoke ``token``; False when it already was (nothing changes then)."""
    if token.is_revoked:
        return False
    token.revoked_at = utcnow()
    record_audit(
        "token.revoke",
        "api_token",
        token.prefix,
        details={"user": token.user.username, "name": token.name},
        actor=actor,
    )
    return True


def tokens_query(user: User | None = None) -> Select[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return query


def authenticate_token(plaintext: str) -> ApiToken | None:
    """The live token matching ``plaintext`` (its user active), marking it used; else None."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.is_revoked or not token.user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token
