"""Hostile input on every route, for every role: a 4xx or a form error, never a 5xx.

A shared corpus of hostile values (unicode digits, huge ints, signs, floats, inf/nan, dates near
years 1 and 9999 with offsets, deep JSON, NUL bytes, long strings, odd timezone names, SQL/HTML
metacharacters, empty) is sent to the path parameters and query parameters of every rule of
``app.url_map``, and to every field of every POST form (found by GETting each page and reading
its forms, sent with a valid CSRF token), as anonymous, viewer, operator, admin and an API token.
The database holds one row of each kind, some at the edges of the supported range (a schedule
expiring 9999-12-31, an execution of an unconfigured queue), and the readers sit far east and
west of UTC. The corpus is sampled per field (deterministically) to stay near a minute on SQLite.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from app import create_app
from app.extensions import db
from app.models import Role, RunStatus, TaskStatus, User
from tests import factories
from tests.conftest import empty_database
from tests.support import PASSWORDS, bearer, csrf_token_in, sign_in


def _quote(value: str) -> str:
    return quote(value, safe="")


DEEP = 100_000
CORPUS: dict[str, list[Any]] = {
    "unicode digits": ["²", "١٢٣", "\uff11\uff12", "߁", "\U0001d7d7"],
    "signs and spaces": ["+1", " 1", "1 ", "-1", "0", "00", "1_000", "0x10"],
    "huge ints": ["9" * 5000, str(2**63), str(2**63 - 1), str(2**64), str(2**31), "1" + "0" * 30],
    "floats": ["1.5", "1e300", "inf", "-inf", "nan", "1e-300", "-0.0"],
    "dates": [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00",
        "0001-01-01",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59",
        "9999-12-31",
        "1969-12-31T23:59:59+00:00",
        "2026-02-30T10:00",
    ],
    "json": [
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        "{}",
        "[]",
        "null",
        "[1e999]",
    ],
    "nul": ["a\x00b", "\x00"],
    "long": ["x" * 100_000, "é" * 5000],
    "timezones": [
        "Factory",
        "localtime",
        "posixrules",
        "right/UTC",
        "posix/UTC",
        "../../etc/passwd",
    ],
    "metacharacters": [
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "%",
        "_",
        "\\",
        "%00",
        "\r\n",
        "*",
    ],
    "empty": ["", " "],
    # Keyset cursors as the lists make them (base64 JSON), edited to years 1 and 9999.
    "cursors": [
        "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwgMSwgIm5leHQiXQ==",
        "WyI5OTk5LTEyLTMxVDIzOjU5OjAwLTE0OjAwIiwgMSwgInByZXYiXQ==",
    ],
}
ALL = [value for values in CORPUS.values() for value in values]
# Query strings: what a front server lets through (gunicorn refuses request lines over 4094
# bytes), so deep JSON and long text go in bodies, and a shorter run of digits in URLs.
URL_LIMIT = 4000
URL_SAMPLE = 30  # values sent to all of a page's query parameters at once
IN_URL = [value for value in ALL if len(_quote(value)) <= URL_LIMIT] + ["9" * 3000, "x" * 3000]
# Path segments: one of each class (a long path costs every layer of routing a copy).
PATH_VALUES = ["²", "١٢٣", "+1", "-1", "0", "9" * 5000, str(2**63), str(2**63 - 1), str(2**31),
               "inf", "a\x00b", "x" * 5000, "<b>", "%00", "' OR 1=1 --"]  # fmt: skip
# JSON-typed hostile values for API bodies.
JSON_VALUES: list[Any] = [
    10**30, 2**63, 2**31, -1, 0, 1e300, float("inf"), float("nan"), -1.5, True, None, "",
    "²", "a\x00b", "x" * 100_000, [], {}, "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "Factory", "right/UTC", json.loads("[" * 900 + "]" * 900),
]  # fmt: skip
QUERY_NAMES = [
    "before", "after", "cursor", "page", "page_size", "limit", "id", "ids", "task_ids", "q",
    "status", "state", "severity", "action", "user", "task", "task_name", "task_type", "queue",
    "source", "variable", "schedule", "created_from", "created_to", "from", "to", "hours", "days",
    "window", "format", "only", "sent", "next", "enabled", "kind", "interval_every", "run_at",
    "timezone", "start_at", "expires_at", "crontab", "count", "before_id", "task_id_prefix",
]  # fmt: skip
FORM_SAMPLE = 3  # hostile values per form field (beyond every value sent to all fields at once)
MINOR_SAMPLE = 2  # values per parameter for the roles that are not the route's main one
ROLES = ("anonymous", "viewer", "operator", "admin", "token")
# Worker control broadcasts to the Redis the tests share and waits for replies: names only.
SKIP_ENDPOINTS = {"static"}
# The OpenAPI document reads no query parameter, and costs 0.4 s to build each time.
NO_QUERY = {"/tasks/api/openapi.json"}
SCHEDULE = {
    "name": "hostile hourly",
    "task": "task_monitoring.tasks.health_check",
    "kind": "interval",
    "interval_every": 1,
    "interval_unit": "hours",
}


def _rules() -> list[Rule]:
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    rules = [r for r in app.url_map.iter_rules() if r.endpoint not in SKIP_ENDPOINTS]
    return sorted(rules, key=lambda r: (r.rule, sorted(r.methods or ())))


RULES = [
    (rule.rule, method)
    for rule in _rules()
    for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
]


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)


class FormReader(HTMLParser):
    """The forms of a page (action, method, named inputs with their values) and hx-post targets."""

    def __init__(self, page_url: str) -> None:
        super().__init__()
        self.page_url = page_url
        self.forms: list[Form] = []
        self.current: Form | None = None
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "option":
            self._option(a)
            return
        if tag == "form":
            self.current = Form(
                a.get("action") or self.page_url, (a.get("method") or "get").lower()
            )
            self.forms.append(self.current)
        # A button's formaction, or an hx-post, sends its form's fields (the same list: the
        # checkboxes that follow the buttons are added to it) to another action.
        targets = {a[k] for k in ("formaction", "hx-post", "data-hx-post") if a.get(k)}
        for target in sorted(targets):
            self.forms.append(Form(target, "post", self.current.fields if self.current else []))
        if self.current is None or not a.get("name"):
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind not in ("submit", "button", "file"):  # every box checked
                self.current.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self.select = a["name"]
            self.current.fields.append((a["name"], ""))
        elif tag == "textarea":
            self.textarea = a["name"]
            self.current.fields.append((a["name"], ""))
        elif tag == "button" and a.get("name"):
            self.current.fields.append((a["name"], a.get("value", "")))

    def _option(self, a: dict[str, str]) -> None:
        """A select's first (or selected) option is its default value."""
        if self.current is None or self.select is None:
            return
        name, value = self.current.fields[-1]
        if name == self.select and (value == "" or "selected" in a):
            self.current.fields[-1] = (name, a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.textarea:
            name, value = self.current.fields[-1]
            self.current.fields[-1] = (name, value + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.current = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


@dataclass
class World:
    app: Flask
    ids: dict[str, str]
    tokens: dict[str, str]
    forms: dict[tuple[str, str], list[Form]]  # (rule, method) -> forms that send to it
    get_params: dict[str, set[str]]  # rule -> query names its pages' GET forms use
    openapi: dict[str, Any]


def _seed(app: Flask) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The rows the walk reads (their ids by path parameter), an admin token, and the pages of
    rows in other states whose forms the walk also fills (cancel, reactivate)."""
    from app.scheduler.service import create_schedule
    from app.services import catalog
    from app.services.task_types import seed_task_types
    from app.services.tokens import create_token
    from app.services.users import create_user
    from app.tracking.alerts import raise_alert

    empty_database()
    seed_task_types()
    users = {role: create_user(role.value, role, PASSWORDS[role]) for role in Role}
    source = catalog.create_source(
        {"code": "hostile", "name": "Hostile", "source_type": "api", "base_url": "https://x.org/"}
    )
    variable = catalog.create_variable(source, {"code": "v1", "name": "Variable one"})
    schedule = create_schedule(**SCHEDULE)
    edge = create_schedule(**{**SCHEDULE, "name": "far edge"})
    # Rows already holding the extremes the inputs now refuse must still render, east and west.
    edge.start_at = datetime(1, 1, 1, 0, 0, tzinfo=UTC)
    edge.expires_at = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    now = datetime.now(UTC)
    factories.execution(status=TaskStatus.FAILURE, created_at=now - timedelta(minutes=5))
    lost = factories.execution(
        status=TaskStatus.FAILURE, queue="no_such_queue", created_at=now - timedelta(minutes=4)
    )
    factories.execution(task_name="x", queue="default", args=[],
                        created_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))  # fmt: skip
    letter = factories.dead_letter(queue="data_retrieval", args=[1], kwargs={}, headers={},
                                   error_message="boom")  # fmt: skip
    pending = factories.execution(
        task_name="x", status=TaskStatus.PENDING, queue="default", created_at=now, args=[]
    )
    run = factories.run(task_name="x", status=RunStatus.FAILURE, started_at=None)
    retired = catalog.create_source(
        {"code": "retired", "name": "Retired", "source_type": "api", "base_url": "https://y.org/"}
    )
    retired_variable = catalog.create_variable(retired, {"code": "v2", "name": "Variable two"})
    retired.is_active = retired_variable.is_active = False
    raise_alert("hostile", "Hostile alert", "An alert to acknowledge")
    db.session.flush()
    token = create_token(users[Role.ADMIN], name="hostile walk").plaintext
    from app.models import Alert, ApiToken, TaskType

    ids = {
        "alert_id": str(db.session.scalar(select(Alert.id).limit(1))),
        "letter_id": str(letter.id),
        "task_id": lost.task_id,  # a retry of it must be refused, never a 500
        "run_id": str(run.id),
        "schedule_id": str(schedule.id),
        "source_id": str(source.id),
        "variable_id": str(variable.id),
        "token_id": str(db.session.scalar(select(ApiToken.id).limit(1))),
        "type_id": str(db.session.scalar(select(TaskType.id).limit(1))),
        "user_id": str(users[Role.VIEWER].id),
        "name": "no-such-worker@host",
        "filename": "nothing.css",
    }
    db.session.commit()
    others = [
        f"/tasks/executions/{pending.task_id}/",
        f"/tasks/sources/{retired.id}/",
        f"/tasks/sources/{retired.id}/variables/{retired_variable.id}/edit/",
    ]
    return ids, {"admin": token}, others


@pytest.fixture(scope="module")
def world(migrated: dict[str, Any], redis_url: str) -> Iterator[World]:
    """The app with one row of each kind, and the forms its pages show an admin."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    app = create_app({**migrated, "RATELIMIT_ENABLED": False})
    with app.app_context():
        ids, tokens, others = _seed(app)
        world = World(app, ids, tokens, {}, {}, {})
        client = app.test_client()
        sign_in(client, "admin", PASSWORDS[Role.ADMIN])
        world.openapi = client.get("/tasks/api/openapi.json").json
        adapter = app.url_map.bind("localhost")
        pages = [
            _fill(rule, ids)
            for rule, method in RULES
            if method == "GET" and not rule.startswith("/tasks/api") and "<path:" not in rule
        ]
        for url in pages + others:
            response = client.get(url)
            if response.status_code != 200 or "html" not in response.content_type:
                continue
            reader = FormReader(url)
            reader.feed(response.get_data(as_text=True))
            for form in reader.forms:
                path = urlsplit(form.action).path
                try:
                    matched, _ = adapter.match(path, method=form.method.upper())
                except Exception:
                    continue
                target = next(r.rule for r in app.url_map.iter_rules() if r.endpoint == matched)
                if form.method == "post":
                    world.forms.setdefault((target, "POST"), []).append(form)
                else:
                    names = {name for name, _ in form.fields}
                    world.get_params.setdefault(target, set()).update(names)
        yield world
        db.session.remove()
        db.engine.dispose()


def _fill(rule: str, ids: dict[str, str], hostile: tuple[str, str] | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if hostile and hostile[0] == name:
            return _quote(hostile[1])
        return ids.get(name, "1")

    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", value, rule)


ZONES = {"viewer": "Pacific/Kiritimati", "operator": "Pacific/Pago_Pago", "admin": "Asia/Kolkata"}


def _clients(world: World) -> dict[str, tuple[FlaskClient, dict[str, str], str]]:
    """A client per role: (client, headers, csrf token)."""
    app = world.app
    for role in Role:  # a previous route may have changed a role or deactivated a user
        user = db.session.scalar(select(User).where(User.username == role.value))
        user.role, user.is_active = role, True
    db.session.commit()
    from app.services.tokens import create_token

    admin = db.session.scalar(select(User).where(User.username == "admin"))
    world.tokens["admin"] = create_token(admin, name=f"walk {uuid.uuid4().hex[:6]}").plaintext
    db.session.commit()
    clients: dict[str, tuple[FlaskClient, dict[str, str], str]] = {}
    for role in ROLES:
        client = app.test_client()
        headers: dict[str, str] = {}
        csrf = ""
        if role == "token":
            headers = bearer(world.tokens["admin"])
        elif role == "anonymous":
            csrf = csrf_token_in(client.get("/tasks/login/").text)
        else:
            csrf = sign_in(client, role, PASSWORDS[Role(role)])
            with client.session_transaction() as session:
                session["timezone"] = ZONES[role]
        clients[role] = (client, headers, csrf)
    return clients


def _sample(key: str, size: int, pool: list[Any] = ALL) -> list[Any]:
    """``size`` corpus values for ``key``, the same on every run; timezone and date fields also
    get their own class."""
    chosen = random.Random(key).sample(pool, min(size, len(pool)))
    lowered = key.rsplit(" ", 1)[-1].lower()
    if "cursor" in lowered:
        chosen += CORPUS["cursors"]
    if "zone" in lowered or lowered == "tz":
        chosen += CORPUS["timezones"]
    if any(word in lowered for word in ("_at", "from", "to", "date", "after", "before")):
        chosen += random.Random(key).sample(CORPUS["dates"], 3)
    if pool is ALL and any(word in lowered for word in ("args", "json", "chain", "values")):
        chosen += CORPUS["json"][:2]
    return chosen


@pytest.mark.parametrize(("rule", "method"), RULES, ids=[f"{m} {r}" for r, m in RULES])
def test_no_server_error(world: World, rule: str, method: str) -> None:
    failures: list[tuple[Any, ...]] = []
    with world.app.app_context():
        clients = _clients(world)
        main = "token" if rule.startswith("/tasks/api") else "admin"
        for role, (client, headers, csrf) in clients.items():
            size = FORM_SAMPLE if role == main else MINOR_SAMPLE
            for url, data, body in _requests(world, rule, method, role == main, size, csrf):
                response = client.open(
                    url,
                    method=method,
                    headers=headers
                    if body is None
                    else {**headers, "Content-Type": "application/json"},
                    data=data if body is None else body,
                )
                if response.status_code >= 500:
                    shown = (
                        {k: str(v)[:40] for k, v in (data or {}).items()}
                        if isinstance(data, dict)
                        else None
                    )
                    failures.append(
                        (role, url[:120], shown, (body or "")[:60], response.status_code,
                         response.get_data(as_text=True)[:200])
                    )  # fmt: skip
            db.session.rollback()
    assert not failures, f"{len(failures)} server errors, first: {failures[:3]}"


def _requests(
    world: World, rule: str, method: str, main: bool, size: int, csrf: str
) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(url, form data, JSON body) of each hostile request to ``rule``."""
    names = re.findall(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", rule)
    path_values = PATH_VALUES if main else PATH_VALUES[:size]
    for name in names:
        for value in path_values:
            yield (
                _fill(rule, world.ids, (name, value)),
                _form_default(world, rule, method, csrf),
                None,
            )
    url = _fill(rule, world.ids)
    if method == "GET" and rule in NO_QUERY:
        yield f"{url}?format=²", None, None
        return
    if method == "GET":
        params = set(QUERY_NAMES) | world.get_params.get(rule, set()) | _api_params(world, rule)
        params = sorted(params)
        for value in random.Random(rule).sample(IN_URL, URL_SAMPLE if main else size):
            yield f"{url}?" + "&".join(f"{p}={_quote(value)}" for p in params), None, None
        if main:  # each parameter alone, so one refused early does not hide the others
            for param in params:
                for value in _sample(f"{rule} {param}", 1, IN_URL):
                    yield f"{url}?{param}={_quote(value)}", None, None
        return
    if rule.startswith("/tasks/api"):
        yield from _json_requests(world, rule, method, url, size)
        return
    forms = world.forms.get((rule, method)) or [
        Form(url, "post", [("id", "1"), ("next", "/tasks/")])
    ]
    for form in forms[:2]:
        target = urlsplit(form.action).path if form.action.startswith("/") else url
        base = dict(form.fields)
        base["csrf_token"] = csrf
        if main:
            for value in random.Random(rule).sample(ALL, 8):  # every field at once
                yield (
                    target,
                    {k: (v if k == "csrf_token" else value) for k, v in base.items()},
                    None,
                )
        for name in base:
            if name == "csrf_token":
                continue
            for value in _sample(f"{rule} {name}", size):
                yield target, {**base, name: value}, None


def _form_default(world: World, rule: str, method: str, csrf: str) -> dict[str, Any] | None:
    if method == "GET" or rule.startswith("/tasks/api"):
        return None
    forms = world.forms.get((rule, method))
    return {**(dict(forms[0].fields) if forms else {}), "csrf_token": csrf}


def _api_params(world: World, rule: str) -> set[str]:
    path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule)
    operation = world.openapi.get("paths", {}).get(path, {}).get("get", {})
    return {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}


def _api_fields(world: World, rule: str, method: str) -> list[str]:
    path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule)
    operation = world.openapi.get("paths", {}).get(path, {}).get(method.lower(), {})
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = schema.get("schema", {})
    if "$ref" in schema:
        schema = world.openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {}))


def _json_requests(
    world: World, rule: str, method: str, url: str, size: int
) -> Iterator[tuple[str, None, str]]:
    yield url, None, "[" * DEEP + "]" * DEEP
    yield url, None, '{"a":' * DEEP + "1" + "}" * DEEP
    yield url, None, "{"
    fields = _api_fields(world, rule, method)
    base: dict[str, Any] = dict(SCHEDULE) if "scheduled" in rule else {}
    base["name"] = f"walk {uuid.uuid4().hex[:8]}"
    for name in fields:
        for value in random.Random(f"{rule} {name}").sample(JSON_VALUES, size + 2):
            body = json.dumps({**base, name: value}, allow_nan=True)
            yield url, None, body
        if name in ("ids", "task_ids"):
            for value in JSON_VALUES[:8]:
                yield url, None, json.dumps({name: [value]}, allow_nan=True)


def test_a_session_holding_a_bad_timezone_reads_every_page(world: World) -> None:
    """A zone stored before the validator existed falls back to UTC instead of failing pages."""
    with world.app.app_context():
        client, _, _ = _clients(world)["viewer"]
        failures = []
        for zone in [*CORPUS["timezones"], "", "UTC\x00", "Nowhere/Else"]:
            with client.session_transaction() as session:
                session["timezone"] = zone
            for rule, method in RULES:
                if method != "GET" or "<path:" in rule:
                    continue
                response = client.get(_fill(rule, world.ids))
                if response.status_code >= 500:
                    failures.append((zone, rule, response.status_code))
        assert not failures, failures[:10]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("0", None), ("²", None),
     ("١٢٣", None), ("+1", None), (" 1", None), ("1 ", None), ("9" * 5000, None), ("", None)],
)  # fmt: skip
def test_one_id_parser(text: str, expected: int | None) -> None:
    from app.bounds import parse_id

    assert parse_id(text) == expected


def test_each_class_gets_a_clear_refusal(world: World) -> None:
    """The refusals the walk only proves are not 500s, with their status and message."""
    with world.app.app_context():
        clients = _clients(world)
        admin, _, csrf = clients["admin"]
        api, headers, _ = clients["token"]
        far = _quote("0001-01-01T00:00:00+14:00")
        for url in ("/tasks/runs/", "/tasks/executions/"):  # the reader is east of UTC
            page = admin.get(f"{url}?created_from=0001-01-01")
            assert page.status_code == 400 and "between the years 1970 and 9000" in page.text
        answer = api.get(f"/tasks/api/executions/?created_from={far}", headers=headers)
        assert answer.status_code == 422 and "created_from" in answer.json["error"]["fields"]
        assert admin.get("/tasks/alerts/?before=%C2%B2").status_code == 400
        assert admin.get("/tasks/dead-letters/%D9%A1/").status_code == 404
        assert admin.get(f"/tasks/runs/{2**63}/").status_code == 404
        deep = "[" * DEEP + "]" * DEEP
        answer = api.post("/tasks/api/scheduled/", data=deep, headers={
            **headers, "Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 400 and answer.json["error"]["code"] == "malformed_json"
        big = {**SCHEDULE, "name": "x" * (2 * 1024 * 1024)}
        answer = api.post("/tasks/api/scheduled/", json=big, headers=headers)
        assert answer.status_code == 413 and answer.json["error"]["code"] == "too_large"
        page = admin.post("/tasks/sources/new/", data={"csrf_token": csrf, "name": "x" * 2**21})
        assert page.status_code == 413 and "the most this site accepts" in page.text
        for zone in ("right/UTC", "Factory", "localtime", "posix/UTC", ""):
            admin.post("/tasks/preferences", data={"csrf_token": csrf, "timezone": zone})
            with admin.session_transaction() as session:
                assert session["timezone"] == ZONES["admin"], zone
        admin.post("/tasks/preferences", data={"csrf_token": csrf, "timezone": "Europe/Paris"})
        with admin.session_transaction() as session:
            assert session["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("text", "zone", "accepted"),
    [("2026-01-31T14:30", "Europe/Paris", True), ("1970-01-01T05:30", "Asia/Kolkata", True),
     ("1970-01-01T00:00", "Asia/Kolkata", False), ("0001-01-01", "Pacific/Kiritimati", False),
     ("9999-12-31T23:59", "Pacific/Pago_Pago", False), ("0001-01-01T00:00+14:00", "UTC", False),
     ("9999-12-31T23:59-14:00", "UTC", False), ("8999-12-30T23:59-14:00", "UTC", True)],
)  # fmt: skip
def test_one_moment_range_before_any_conversion(text: str, zone: str, accepted: bool) -> None:
    from zoneinfo import ZoneInfo

    from app.bounds import OutOfRange, displayable, parse_moment

    if accepted:
        moment = parse_moment(text, ZoneInfo(zone))
        assert moment.tzinfo is UTC and displayable(moment) == moment
    else:
        with pytest.raises(OutOfRange):
            parse_moment(text, ZoneInfo(zone))
    for stored in (datetime(9999, 12, 31, 23, 59), datetime(1, 1, 1, tzinfo=UTC)):
        displayable(stored).astimezone(ZoneInfo("Pacific/Kiritimati"))  # no overflow
        displayable(stored).astimezone(ZoneInfo("Pacific/Pago_Pago"))
