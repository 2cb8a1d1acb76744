"""API tokens: hashed at rest, the owner's role applies, revocation, last-used time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.extensions import db
from app.models import ApiToken, Role, User
from app.models.types import utcnow
from app.services.tokens import create_token, find_token, revoke_token
from tests.support import bearer


def every_stored_value() -> list[str]:
    values = []
    with db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            for row in connection.execute(text(f"SELECT * FROM {table.name}")):
                values.extend(str(value) for value in row)
    return values


def test_tokens_are_hashed_at_rest(users: dict[Role, User]) -> None:
    issued = create_token(users[Role.OPERATOR], name="ci")
    db.session.commit()
    # ewas_<prefix>_<secret>: the secret itself may contain "_", so split from the left.
    secret = issued.plaintext.split("_", 2)[2]
    stored = every_stored_value()
    assert all(issued.plaintext not in value and secret not in value for value in stored)
    token = db.session.scalar(select(ApiToken))
    assert token.prefix in issued.plaintext and len(token.token_hash) == 64


def test_the_owners_role_applies(client: FlaskClient, token_for: Callable) -> None:
    viewer, admin = token_for(Role.VIEWER), token_for(Role.ADMIN)
    assert client.get("/tasks/", headers=bearer(viewer)).status_code == 200
    assert client.get("/tasks/audit/", headers=bearer(viewer)).status_code == 403
    assert client.get("/tasks/audit/", headers=bearer(admin)).status_code == 200


def test_revoked_token_gets_401(
    client: FlaskClient, users: dict[Role, User], token_for: Callable
) -> None:
    plaintext = token_for(Role.ADMIN)
    assert client.get("/tasks/", headers=bearer(plaintext)).status_code == 200
    token = db.session.scalar(select(ApiToken))
    assert revoke_token(token, actor=users[Role.ADMIN]) is True
    assert revoke_token(token) is False
    db.session.commit()
    response = client.get("/tasks/", headers=bearer(plaintext))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_unknown_or_malformed_tokens_get_401(client: FlaskClient, token_for: Callable) -> None:
    plaintext = token_for(Role.ADMIN)
    for header in [f"Bearer {plaintext}x", "Bearer", "Bearer ", f"bearer {plaintext[:-1]}"]:
        response = client.get("/tasks/", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json["error"]["code"] == "unauthorized"
    assert client.get("/tasks/", headers=bearer(plaintext)).status_code == 200


def test_other_authorization_schemes_are_ignored(
    client: FlaskClient, login_as: Callable, token_for: Callable
) -> None:
    plaintext = token_for(Role.ADMIN)
    # A token sent without the Bearer scheme does not authenticate...
    for header in [f"Basic {plaintext}", plaintext]:
        response = client.get("/tasks/", headers={"Authorization": header})
        assert response.status_code == 302, header
    # ...and a proxy's Basic credentials do not break a signed-in session.
    login_as(client, Role.VIEWER)
    assert client.get("/tasks/", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 200


def test_token_of_an_inactive_user_gets_401(
    client: FlaskClient, users: dict[Role, User], token_for: Callable
) -> None:
    plaintext = token_for(Role.ADMIN)
    users[Role.ADMIN].is_active = False
    db.session.commit()
    assert client.get("/tasks/", headers=bearer(plaintext)).status_code == 401


def test_a_token_wins_over_a_session(
    client: FlaskClient, login_as: Callable, token_for: Callable
) -> None:
    viewer_token = token_for(Role.VIEWER)
    login_as(client, Role.ADMIN)
    assert client.get("/tasks/audit/").status_code == 200
    assert client.get("/tasks/audit/", headers=bearer(viewer_token)).status_code == 403
    assert client.get("/tasks/audit/", headers=bearer("ewas_bad_token")).status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(
    client: FlaskClient, token_for: Callable
) -> None:
    plaintext = token_for(Role.VIEWER)
    token = db.session.scalar(select(ApiToken))
    assert token.last_used_at is None
    client.get("/tasks/", headers=bearer(plaintext))
    db.session.refresh(token)
    first = token.last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)

    client.get("/tasks/", headers=bearer(plaintext))
    db.session.refresh(token)
    assert token.last_used_at == first

    token.last_used_at = first - timedelta(minutes=5)
    db.session.commit()
    client.get("/tasks/", headers=bearer(plaintext))
    db.session.refresh(token)
    assert token.last_used_at > first


def test_find_token_by_id_or_prefix(users: dict[Role, User]) -> None:
    issued = create_token(users[Role.VIEWER])
    db.session.commit()
    assert find_token(str(issued.token.id)) is issued.token
    assert find_token(issued.token.prefix) is issued.token
