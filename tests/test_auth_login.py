"""Sign-in and sign-out: form errors, rate limiting, sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role, User
from app.services.users import set_password
from tests.support import PASSWORDS, bearer, csrf_token_in


def post_login(client: FlaskClient, username: str, password: str, **environ: str):
    csrf = csrf_token_in(client.get("/tasks/login/").text)
    return client.post(
        "/tasks/login/",
        data={"username": username, "password": password, "csrf_token": csrf},
        environ_base=environ,
    )


def test_sign_in_and_out(client: FlaskClient, users: dict) -> None:
    response = post_login(client, "operator", PASSWORDS[Role.OPERATOR])
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/"
    page = client.get("/tasks/").text
    assert "operator" in page and "Sign out" in page
    assert users[Role.OPERATOR].last_login_at is not None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.login"))
    assert entry.actor_name == "operator" and entry.outcome == "ok"

    csrf = csrf_token_in(page)
    response = client.post("/tasks/logout/", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/login/"
    assert client.get("/tasks/").status_code == 302


def test_a_cookie_saved_before_sign_out_no_longer_works(app: Flask, users: dict) -> None:
    client = app.test_client()
    assert post_login(client, "operator", PASSWORDS[Role.OPERATOR]).status_code == 303
    page = client.get("/tasks/").text
    saved = client.get_cookie("session").value
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/tasks/").status_code == 200  # the copy works while signed in
    assert (
        client.post("/tasks/logout/", data={"csrf_token": csrf_token_in(page)}).status_code == 303
    )
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/tasks/").status_code == 302  # ended on the server, not only in the browser
    again = app.test_client()
    assert post_login(again, "operator", PASSWORDS[Role.OPERATOR]).status_code == 303
    assert again.get("/tasks/").status_code == 200  # signing in again works


def test_sign_out_with_a_token_ends_no_session(client: FlaskClient, token_for: Callable) -> None:
    by_token = bearer(token_for(Role.VIEWER))
    assert client.post("/tasks/logout/", headers=by_token).status_code in (303, 400)
    assert client.get("/tasks/", headers=by_token).status_code == 200


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("viewer", "wrong-password", "password"),
        ("nobody", "whatever-password", "password"),
        ("", "whatever-password", "username"),
        ("viewer", "", "password"),
        ("x" * 500, "p" * 5000, "username"),
        ("nul\x00name", "whatever-password", "password"),
    ],
)
def test_bad_input_gets_a_form_error(
    client: FlaskClient, users: dict, username: str, password: str, field: str
) -> None:
    response = post_login(client, username, password)
    assert response.status_code == 422
    assert 'class="field-error"' in response.text
    assert f'id="{field}"' in response.text and 'aria-invalid="true"' in response.text
    assert client.get("/tasks/").status_code == 302


def test_inactive_user_cannot_sign_in(client: FlaskClient, users: dict) -> None:
    users[Role.ADMIN].is_active = False
    db.session.commit()
    assert post_login(client, "admin", PASSWORDS[Role.ADMIN]).status_code == 422


def test_repeated_wrong_passwords_get_429(client: FlaskClient, users: dict) -> None:
    for _attempt in range(10):
        assert post_login(client, "admin", "wrong-password").status_code == 422
    response = post_login(client, "admin", "wrong-password")
    assert response.status_code == 429
    assert "Too many attempts" in response.text
    # Even the right password waits: the limit is on the attempt, not on the outcome.
    assert post_login(client, "admin", PASSWORDS[Role.ADMIN]).status_code == 429


def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere(
    client: FlaskClient, users: dict
) -> None:
    for _attempt in range(10):
        assert post_login(client, "admin", "wrong", REMOTE_ADDR="10.0.0.1").status_code == 422
    assert post_login(client, "admin", "wrong", REMOTE_ADDR="10.0.0.1").status_code == 429
    other = client.application.test_client()
    response = post_login(other, "admin", PASSWORDS[Role.ADMIN], REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 303  # the right password from B signs in
    right = PASSWORDS[Role.ADMIN]
    assert post_login(client, "admin", right, REMOTE_ADDR="10.0.0.1").status_code == 429  # A still


def test_one_address_is_limited_across_usernames(client: FlaskClient, users: dict) -> None:
    for attempt in range(30):
        response = post_login(client, f"user{attempt}", "wrong", REMOTE_ADDR="10.0.3.1")
        assert response.status_code == 422
    assert post_login(client, "someone", "wrong", REMOTE_ADDR="10.0.3.1").status_code == 429
    response = post_login(client, "viewer", PASSWORDS[Role.VIEWER], REMOTE_ADDR="10.0.3.2")
    assert response.status_code == 303


def test_successful_sign_ins_do_not_count(app: Flask, users: dict) -> None:
    for _attempt in range(12):
        client = app.test_client()
        assert post_login(client, "viewer", PASSWORDS[Role.VIEWER]).status_code == 303


def test_new_password_ends_other_sessions(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.VIEWER)
    assert client.get("/tasks/").status_code == 200
    user = db.session.scalar(select(User).where(User.username == "viewer"))
    set_password(user, "a-brand-new-password")
    db.session.commit()
    assert client.get("/tasks/").status_code == 302


def test_role_change_applies_at_once(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.ADMIN)
    assert client.get("/tasks/audit/").status_code == 200
    user = db.session.scalar(select(User).where(User.username == "admin"))
    user.role = Role.VIEWER
    db.session.commit()
    assert client.get("/tasks/audit/").status_code == 403
