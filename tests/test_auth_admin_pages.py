"""Admin pages for users and tokens: form errors beside fields, tokens shown once, audit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditEntry, Role, User
from app.services.tokens import hash_token
from tests.support import bearer


def user(name: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == name))


@pytest.fixture
def admin_client(client: FlaskClient, login_as: Callable) -> tuple[FlaskClient, str]:
    return client, login_as(client, Role.ADMIN)


def test_admin_creates_a_user(admin_client: tuple[FlaskClient, str]) -> None:
    client, csrf = admin_client
    response = client.post(
        "/tasks/users/",
        data={
            "username": "ana",
            "role": "operator",
            "password": "long-password",
            "csrf_token": csrf,
        },
    )
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/users/"
    assert user("ana").role == Role.OPERATOR
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.target_id == "ana"))
    assert entry.action == "user.create" and entry.actor_name == "admin"
    assert "ana" in client.get("/tasks/users/").text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "viewer", "role": "viewer", "password": "long-password"}, "already exists"),
        ({"username": "x y", "role": "viewer", "password": "long-password"}, "A username is"),
        ({"username": "bo", "role": "viewer", "password": "short"}, "at least 8"),
        ({"username": "bo", "role": "king", "password": "long-password"}, "Not a valid choice"),
        ({"username": "", "role": "viewer", "password": ""}, "This field is required"),
    ],
)
def test_bad_user_input_gets_a_form_error(
    admin_client: tuple[FlaskClient, str], data: dict, message: str
) -> None:
    client, csrf = admin_client
    response = client.post("/tasks/users/", data={**data, "csrf_token": csrf})
    assert response.status_code == 422
    assert message in response.text and 'class="field-error"' in response.text
    assert user("bo") is None


def test_role_change_and_last_admin(
    admin_client: tuple[FlaskClient, str], users: dict[Role, User]
) -> None:
    client, csrf = admin_client
    viewer_id, admin_id = users[Role.VIEWER].id, users[Role.ADMIN].id
    page = client.get("/tasks/users/").text
    row_form = page.split(f'action="/tasks/users/{viewer_id}/role/">', 1)[1].split("</form>")[0]
    assert 'name="csrf_token"' in row_form and 'name="role"' in row_form
    response = client.post(
        f"/tasks/users/{viewer_id}/role/",
        data={"role": "operator", "csrf_token": csrf},
    )
    assert response.status_code == 303
    assert user("viewer").role == Role.OPERATOR

    response = client.post(
        f"/tasks/users/{admin_id}/role/", data={"role": "viewer", "csrf_token": csrf}
    )
    assert response.status_code == 409 and "last admin" in response.text
    assert user("admin").role == Role.ADMIN

    response = client.post(
        f"/tasks/users/{viewer_id}/role/",
        data={"role": "emperor", "csrf_token": csrf},
    )
    assert response.status_code == 422
    assert client.post("/tasks/users/9999/role/", data={"csrf_token": csrf}).status_code == 404


def test_token_is_shown_once_and_revoked(
    admin_client: tuple[FlaskClient, str], users: dict[Role, User]
) -> None:
    client, csrf = admin_client
    response = client.post(
        "/tasks/tokens/",
        data={"user_id": users[Role.OPERATOR].id, "name": "<b>export</b>", "csrf_token": csrf},
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"  # the secret is never cached
    token = db.session.scalar(select(ApiToken))
    shown = response.text.split('<code class="secret ltr" dir="ltr">', 1)[1]
    plaintext = shown.split("</code>", 1)[0]
    assert token.token_hash == hash_token(plaintext)
    assert "&lt;b&gt;export&lt;/b&gt;" in response.text
    listing = client.get("/tasks/tokens/").text
    assert token.prefix in listing and plaintext not in listing
    assert '<th><span class="visually-hidden">Actions</span></th>' in listing  # no empty header

    by_token = bearer(plaintext)
    assert client.application.test_client().get("/tasks/", headers=by_token).status_code == 200
    response = client.post(f"/tasks/tokens/{token.id}/revoke/", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert client.application.test_client().get("/tasks/", headers=by_token).status_code == 401


def test_bad_token_input_gets_a_form_error(admin_client: tuple[FlaskClient, str]) -> None:
    client, csrf = admin_client
    for data in [{"user_id": "9999"}, {"user_id": "abc"}, {"user_id": "", "name": "x" * 300}]:
        response = client.post("/tasks/tokens/", data={**data, "csrf_token": csrf})
        assert response.status_code == 422, data
        assert 'class="field-error"' in response.text
    assert db.session.scalar(select(ApiToken)) is None
