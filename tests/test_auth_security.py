"""Security headers, cookie flags, escaping of task output, and the SECRET_KEY guard."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import DEV_SECRET_KEY
from app.extensions import db
from app.models import Role, TaskStatus
from app.models.types import utcnow
from tests import factories

PAYLOAD = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.mark.parametrize("path", ["/tasks/login/", "/tasks/", "/static/engine.css", "/nowhere"])
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]:
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "no session cookie was set"
    return cookies[0]


def test_session_cookie_flags(client: FlaskClient) -> None:
    cookie = session_cookie(client.get("/tasks/login/"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(app: Flask) -> None:
    client = app.test_client()
    cookie = session_cookie(client.get("/tasks/login/", base_url="https://localhost"))
    assert "Secure" in cookie


def test_hsts_only_in_production(make_app: Callable[..., Flask], client: FlaskClient) -> None:
    app = make_app(ENV_NAME="production", SECRET_KEY="a-real-secret-key-for-production")
    for path in ("/tasks/login/", "/tasks/api/health/", "/tasks/no-such-page/"):
        hsts = app.test_client().get(path).headers.get("Strict-Transport-Security")
        assert hsts and "max-age=31536000" in hsts, path
    assert "Strict-Transport-Security" not in client.get("/tasks/login/").headers


def test_session_cookie_is_secure_in_production(make_app: Callable[..., Flask]) -> None:
    app = make_app(ENV_NAME="production", SECRET_KEY="a-real-secret-key-for-production")
    cookie = session_cookie(app.test_client().get("/tasks/login/"))
    assert "Secure" in cookie


@pytest.mark.parametrize("key", [None, "", DEV_SECRET_KEY])
def test_production_refuses_a_missing_or_default_secret_key(
    make_app: Callable[..., Flask], key: str | None
) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        make_app(ENV_NAME="production", SECRET_KEY=key)


def test_local_mode_accepts_the_development_key(make_app: Callable[..., Flask]) -> None:
    assert make_app(ENV_NAME="local", SECRET_KEY=DEV_SECRET_KEY).secret_key == DEV_SECRET_KEY


def test_task_output_is_shown_escaped(client: FlaskClient, login_as: Callable) -> None:
    now = utcnow()
    factories.execution(
        task_name="demo.fails",
        status=TaskStatus.FAILURE,
        error_message=PAYLOAD,
        started_at=now,
        completed_at=now,
    )
    factories.execution(task_name="demo.succeeds", result={"html": PAYLOAD})
    db.session.commit()
    login_as(client, Role.VIEWER)
    page = client.get("/tasks/").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page  # the error message
    assert "\\u003cscript\\u003e" in page  # the JSON result
