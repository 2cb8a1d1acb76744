"""Browser hardening: security headers, cookie flags, and no default SECRET_KEY in production."""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface

from app.config import DEV_SECRET_KEY

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
NO_STORE = {"Cache-Control": "no-store"}  # for any answer that shows a secret


class SessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure on HTTPS requests too, not only when configured."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def check_secret_key(app: Flask) -> None:
    """Outside local runs, refuse to start with a missing or the development SECRET_KEY."""
    if app.config.get("ENV_NAME", "local") == "local":
        return
    key = app.config.get("SECRET_KEY")
    if not key or key == DEV_SECRET_KEY:
        raise RuntimeError(
            "SECRET_KEY is missing or is the development default; set SECRET_KEY to a long "
            "random value (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))') "
            f"or run with EWAS_ENV=local. EWAS_ENV is {app.config.get('ENV_NAME')!r}."
        )


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config.get("ENV_NAME") == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    check_secret_key(app)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("ENV_NAME") == "production":
        app.config["SESSION_COOKIE_SECURE"] = True
    app.session_interface = SessionInterface()
    app.after_request(add_security_headers)
