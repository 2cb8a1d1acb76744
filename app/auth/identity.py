"""Who is calling: a session signed in through the login page, or an API token."""

from __future__ import annotations

from flask import Flask, Request, current_app, g, request

from app.bounds import parse_id
from app.extensions import db, login_manager
from app.models import User
from app.services.tokens import authenticate_token

BEARER = "bearer"
TOKEN_KEY = "ewas.api_token"


def bearer_token(req: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header ("" when it is empty), else None.

    Other schemes are ignored, so a reverse proxy's Basic authentication does not get in the way.
    """
    scheme, _sep, credentials = req.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != BEARER:
        return None
    return credentials.strip()


def authenticated_by_token() -> bool:
    return request.environ.get(TOKEN_KEY) is not None


def forget_previous_caller() -> None:
    """Drop what an earlier request that shared this app context cached about its caller.

    Flask-Login caches the user and Flask-WTF the CSRF token on ``g``, which lives as long as
    the app context; requests made inside an already pushed context (tests, embedded calls)
    would otherwise inherit another caller's identity or token.
    """
    csrf_key = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    for key in ("_login_user", csrf_key, "csrf_valid"):
        g.pop(key, None)


def load_session_user(user_id: str) -> User | None:
    """The session's user, unless a bearer token was sent (the token alone counts then)."""
    if bearer_token(request) is not None:
        return None
    raw_id, _sep, session_key = user_id.partition(":")
    user_pk = parse_id(raw_id)
    if user_pk is None:
        return None
    user = db.session.get(User, user_pk)
    if user is None or not user.is_active or user.session_key != session_key:
        return None
    return user


def load_token_user(req: Request) -> User | None:
    plaintext = bearer_token(req)
    if not plaintext:
        return None
    token = authenticate_token(plaintext)
    if token is None:
        return None
    if db.session.is_modified(token):
        db.session.commit()  # the throttled last-used time; the request's own work comes later
    req.environ[TOKEN_KEY] = token
    return token.user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(load_session_user)
    login_manager.request_loader(load_token_user)
