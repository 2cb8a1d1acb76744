"""The access matrix: every route, every caller, every method, checked against the declared rules.

A route added without a rule fails ``test_every_route_declares_a_rule`` and is denied at runtime.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from app.auth.access import MACHINE_PATHS, AccessRule, requires, rule_for
from app.models import Role
from tests.support import bearer, csrf_token_in, sign_in

VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
# What this issue's own routes must require: (read, write); None means public.
EXPECTED_RULES = {
    "root": (VIEWER, OPERATOR),
    "web.dashboard": (VIEWER, OPERATOR),
    "web.preferences": (VIEWER, VIEWER),
    "auth.login": (None, None),
    "auth.logout": (VIEWER, VIEWER),
    "admin.audit": (ADMIN, ADMIN),
    "admin.users": (ADMIN, ADMIN),
    "admin.create_user": (ADMIN, ADMIN),
    "admin.set_role": (ADMIN, ADMIN),
    "admin.tokens": (ADMIN, ADMIN),
    "admin.create_token": (ADMIN, ADMIN),
    "admin.revoke_token": (ADMIN, ADMIN),
    # management pages: task types, sources and variables, alerts, dead letters
    "web.task_types": (VIEWER, OPERATOR),
    "web.edit_task_type": (OPERATOR, OPERATOR),
    "web.delete_task_type": (OPERATOR, OPERATOR),
    "web.sources": (VIEWER, OPERATOR),
    "web.source_detail": (VIEWER, OPERATOR),
    "web.create_source": (OPERATOR, OPERATOR),
    "web.edit_source": (OPERATOR, OPERATOR),
    "web.deactivate_source": (OPERATOR, OPERATOR),
    "web.reactivate_source": (OPERATOR, OPERATOR),
    "web.delete_source": (OPERATOR, OPERATOR),
    "web.create_variable": (OPERATOR, OPERATOR),
    "web.edit_variable": (OPERATOR, OPERATOR),
    "web.deactivate_variable": (OPERATOR, OPERATOR),
    "web.reactivate_variable": (OPERATOR, OPERATOR),
    "web.delete_variable": (OPERATOR, OPERATOR),
    "web.alerts": (VIEWER, OPERATOR),
    "web.acknowledge_alert": (OPERATOR, OPERATOR),
    "web.acknowledge_alerts": (OPERATOR, OPERATOR),
    "web.dead_letters": (VIEWER, OPERATOR),
    "web.dead_letter_detail": (VIEWER, OPERATOR),
    "web.requeue_dead_letter": (OPERATOR, OPERATOR),
    "web.discard_dead_letter": (OPERATOR, OPERATOR),
    "web.dead_letters_selected": (OPERATOR, OPERATOR),
    "web.confirm_dead_letters_all": (OPERATOR, OPERATOR),
    "web.dead_letters_all": (OPERATOR, OPERATOR),
    # workers and queues pages
    "web.workers": (VIEWER, OPERATOR),
    "web.worker_shutdown": (OPERATOR, OPERATOR),
    "web.worker_pool_grow": (OPERATOR, OPERATOR),
    "web.worker_pool_shrink": (OPERATOR, OPERATOR),
    "web.worker_add_consumer": (OPERATOR, OPERATOR),
    "web.worker_cancel_consumer": (OPERATOR, OPERATOR),
    "web.queues": (VIEWER, OPERATOR),
    # scheduled tasks
    "web.scheduled": (VIEWER, OPERATOR),
    "web.scheduled_detail": (VIEWER, OPERATOR),
    "web.scheduled_new": (OPERATOR, OPERATOR),
    "web.scheduled_edit": (OPERATOR, OPERATOR),
    "web.scheduled_preview": (OPERATOR, OPERATOR),
    "web.scheduled_toggle": (OPERATOR, OPERATOR),
    "web.scheduled_run": (OPERATOR, OPERATOR),
    "web.scheduled_delete": (OPERATOR, OPERATOR),
    # executions: list, batch actions, export, detail
    "web.executions": (VIEWER, OPERATOR),
    "web.executions_bulk_retry": (OPERATOR, OPERATOR),
    "web.executions_bulk_cancel": (OPERATOR, OPERATOR),
    "web.executions_analyze": (VIEWER, VIEWER),  # a read, posted: ids do not fit a URL
    "web.executions_export": (VIEWER, OPERATOR),
    "web.execution_detail": (VIEWER, OPERATOR),
    "web.execution_retry": (OPERATOR, OPERATOR),
    "web.execution_cancel": (OPERATOR, OPERATOR),
    # pipeline runs
    "web.runs": (VIEWER, OPERATOR),
    "web.run_detail": (VIEWER, OPERATOR),
    "web.run_resume": (OPERATOR, OPERATOR),
    "web.run_again": (OPERATOR, OPERATOR),
    # dashboard
    "web.dashboard_metrics": (VIEWER, OPERATOR),
    "web.dashboard_trends": (VIEWER, OPERATOR),
    "web.dashboard_health": (VIEWER, OPERATOR),
    "web.dashboard_recent": (VIEWER, OPERATOR),
    "web.dashboard_runs": (VIEWER, OPERATOR),
    "web.dashboard_run_now": (OPERATOR, OPERATOR),
    "web.dashboard_retry_failures": (OPERATOR, OPERATOR),
}
CALLERS = ["anonymous", *(r.value for r in Role), *(f"token:{r.value}" for r in Role)]
SAMPLE_VALUES = {"int": "1", "uuid": "00000000-0000-4000-8000-000000000000", "float": "1.0"}
URL_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>")


def undeclared_endpoints(app: Flask) -> list[str]:
    return sorted(
        {r.endpoint for r in app.url_map.iter_rules() if rule_for(app, r.endpoint, r.rule) is None}
    )


def sample_path(rule: Rule) -> str:
    """A concrete URL for ``rule`` (each converter gets a plausible value)."""

    def value(match: re.Match[str]) -> str:
        return SAMPLE_VALUES.get(match.group(1) or "default", "sample")

    return URL_ARGUMENT.sub(value, rule.rule)


def routes(app: Flask) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]


def role_of(caller: str) -> Role | None:
    return None if caller == "anonymous" else Role(caller.removeprefix("token:"))


def should_allow(rule: AccessRule, method: str, role: Role | None) -> bool:
    required = rule.read if method in ("GET", "HEAD", "OPTIONS") else rule.write
    if required is None:
        return True
    order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
    return role is not None and order.index(role) >= order.index(required)


@dataclass
class Caller:
    client: FlaskClient
    headers: dict[str, str]


@pytest.fixture
def make_caller(app: Flask, login_as: Callable, token_for: Callable) -> Callable[[str], Caller]:
    def make(kind: str) -> Caller:
        client = app.test_client()
        if kind == "anonymous":
            csrf = csrf_token_in(client.get("/tasks/login/").text)
            return Caller(client, {"X-CSRFToken": csrf})
        if kind.startswith("token:"):
            token = token_for(Role(kind.removeprefix("token:")))
            return Caller(client, bearer(token))
        return Caller(client, {"X-CSRFToken": login_as(client, Role(kind))})

    return make


def test_every_route_declares_a_rule(app: Flask) -> None:
    assert undeclared_endpoints(app) == []


def test_this_issues_routes_have_the_expected_rules(app: Flask) -> None:
    for endpoint, (read, write) in EXPECTED_RULES.items():
        rule = rule_for(app, endpoint)
        assert (rule.read, rule.write) == (read, write), endpoint


def test_access_matrix(app: Flask, make_caller: Callable[[str], Caller]) -> None:
    checked = 0
    for rule, method in routes(app):
        declared = rule_for(app, rule.endpoint, rule.rule)
        assert declared is not None, f"{rule.endpoint} has no access rule"
        api = rule.rule.startswith("/tasks/api/") or rule.rule in MACHINE_PATHS
        for kind in CALLERS:
            caller = make_caller(kind)  # a fresh client: logout must not leak into other calls
            response = caller.client.open(sample_path(rule), method=method, headers=caller.headers)
            where = f"{kind} {method} {rule.rule} -> {response.status_code}"
            if should_allow(declared, method, role_of(kind)):
                assert response.status_code not in (400, 401, 403, 500), where
                assert "/tasks/login/?next=" not in response.headers.get("Location", ""), where
            elif kind == "anonymous" and not api:
                assert response.status_code == 302, where
                assert response.headers["Location"].startswith("/tasks/login/?next="), where
            else:
                expected = 401 if kind == "anonymous" else 403
                assert response.status_code == expected, where
                if api or kind.startswith("token:"):
                    assert response.json["error"]["code"] in ("unauthorized", "forbidden"), where
            checked += 1
    assert checked >= len(EXPECTED_RULES) * len(CALLERS)


def test_a_route_without_a_rule_is_denied_to_everyone(
    make_app: Callable[..., Flask], redis_client: object
) -> None:
    app = make_app()
    app.add_url_rule("/tasks/forgotten/", "forgotten", lambda: "secret", methods=["GET", "POST"])
    assert undeclared_endpoints(app) == ["forgotten"]
    with app.app_context():
        from app.extensions import db
        from app.services.users import create_user
        from tests.conftest import empty_database

        empty_database()
        create_user("boss", Role.ADMIN, "boss-password-1")
        db.session.commit()
    client = app.test_client()
    assert client.get("/tasks/forgotten/").status_code == 403
    sign_in(client, "boss", "boss-password-1")
    with app.test_request_context():
        users_page = url_for("admin.users")
    assert client.get(users_page).status_code == 200  # signed in, as an admin
    response = client.get("/tasks/forgotten/")
    assert response.status_code == 403 and b"secret" not in response.data


def api_app(make_app: Callable[..., Flask]) -> Flask:
    """An app with a stand-in API route, as the API issue will add them."""
    app = make_app()
    app.add_url_rule(
        "/tasks/api/probe/",
        "api_probe",
        requires(Role.VIEWER)(lambda: {"ok": True}),
        methods=["GET", "POST"],
    )
    # The health route is public (by its path, and by its view's rule since the API exists).
    return app


def test_api_paths_get_json_errors(
    make_app: Callable[..., Flask], app: Flask, users: dict, login_as: Callable
) -> None:
    probe = api_app(make_app)
    client = probe.test_client()
    response = client.get("/tasks/api/probe/")
    assert response.status_code == 401
    assert response.json == {
        "error": {"code": "unauthorized", "message": "Authentication required.", "fields": {}}
    }
    assert client.get("/tasks/api/health/").json["healthy"] is True

    csrf = login_as(client, Role.VIEWER)
    assert client.get("/tasks/api/probe/").json == {"ok": True}
    response = client.post("/tasks/api/probe/", headers={"X-CSRFToken": csrf})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_anonymous_page_request_goes_to_login_and_back(client: FlaskClient, users: dict) -> None:
    response = client.get("/tasks/audit/?action=user.login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/tasks/login/?next=/tasks/audit/?action%3Duser.login"
    login_page = client.get(response.headers["Location"])
    csrf = csrf_token_in(login_page.text)
    assert 'value="/tasks/audit/?action=user.login"' in login_page.text
    response = client.post(
        "/tasks/login/",
        data={
            "username": "admin",
            "password": "admin-password-1",
            "csrf_token": csrf,
            "next": "/tasks/audit/?action=user.login",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks/audit/?action=user.login"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/tasks/\r\nSet-Cookie: x=y",
        "http:/evil.example",
    ],
)
def test_login_refuses_an_open_redirect(client: FlaskClient, users: dict, target: str) -> None:
    csrf = csrf_token_in(client.get("/tasks/login/").text)
    response = client.post(
        "/tasks/login/",
        data={
            "username": "viewer",
            "password": "viewer-password-1",
            "csrf_token": csrf,
            "next": target,
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks/"


def test_insufficient_role_gets_a_403_page(client: FlaskClient, login_as: Callable) -> None:
    login_as(client, Role.OPERATOR)
    response = client.get("/tasks/audit/")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "Your role does not allow this." in response.text
