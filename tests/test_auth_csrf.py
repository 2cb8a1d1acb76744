"""CSRF: forms and HTMX posts need the session's token; API-token requests do not."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from app.auth.access import requires
from app.models import Role
from tests.support import HTMX, PASSWORDS, bearer, csrf_token_in, htmx


def test_login_form_without_csrf_token_gets_400(client: FlaskClient, users: dict) -> None:
    client.get("/tasks/login/")
    response = client.post(
        "/tasks/login/", data={"username": "admin", "password": PASSWORDS[Role.ADMIN]}
    )
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "reload the page" in response.text
    assert client.get("/tasks/").status_code == 302  # not signed in


def test_form_post_without_csrf_token_gets_400(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.VIEWER)
    assert client.post("/tasks/logout/").status_code == 400
    assert client.get("/tasks/").status_code == 200  # still signed in


def test_htmx_post_needs_the_header_token(client: FlaskClient, login_as: Callable) -> None:
    csrf = login_as(client, Role.VIEWER)
    assert client.post("/tasks/logout/", headers=HTMX).status_code == 400
    wrong = htmx(csrf=csrf[:-4] + "AAAA")
    assert client.post("/tasks/logout/", headers=wrong).status_code == 400
    response = client.post("/tasks/logout/", headers=htmx(csrf=csrf))
    assert response.status_code == 303


def test_pages_expose_the_token_for_htmx(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.VIEWER)
    page = client.get("/tasks/").text
    token = csrf_token_in(page)  # signed with a timestamp: equal within a page, not across pages
    assert f'data-hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in page
    response = client.post("/tasks/logout/", headers=htmx(csrf=token))
    assert response.status_code == 303


def test_a_token_from_another_session_is_refused(app: Flask, login_as: Callable) -> None:
    first, second = app.test_client(), app.test_client()
    login_as(first, Role.ADMIN)
    csrf_second = login_as(second, Role.VIEWER)
    response = first.post("/tasks/logout/", headers={"X-CSRFToken": csrf_second})
    assert response.status_code == 400


def test_token_authenticated_post_needs_no_csrf(client: FlaskClient, token_for: Callable) -> None:
    token = token_for(Role.VIEWER)
    response = client.post("/tasks/logout/", headers=bearer(token))
    assert response.status_code == 303


def test_api_csrf_failure_is_json(
    make_app: Callable[..., Flask], app: Flask, login_as: Callable
) -> None:
    probe = make_app()
    probe.add_url_rule(
        "/tasks/api/probe/",
        "api_probe",
        requires(Role.VIEWER, write=Role.VIEWER)(lambda: {"ok": True}),
        methods=["POST"],
    )
    client = probe.test_client()
    csrf = login_as(client, Role.VIEWER)
    response = client.post("/tasks/api/probe/")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "csrf_failed"
    assert set(response.json["error"]) == {"code", "message", "fields"}
    assert client.post("/tasks/api/probe/", headers={"X-CSRFToken": csrf}).json == {"ok": True}
