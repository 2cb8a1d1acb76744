"""Shared fixtures: a real database (SQLite file, or PostgreSQL with TEST_DATABASE_URL), a real
Redis database of the run's own (the one TEST_REDIS_URL names, or a free one it claims), the app,
its clients, and real Celery workers."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, make_url, text

from app import create_app
from app.config import normalize_database_url
from app.extensions import db
from app.local_redis import redis_answers
from app.models import Role, User
from tests.scheduler_support import BeatProcess, RedisServer
from tests.support import (
    BIN,
    PASSWORDS,
    PROJECT_DIR,
    CeleryWorker,
    EngineProcess,
    bearer,
    sign_in,
    wait_for,
)

# No database named: the run claims a free one (see claim_database); CI names 14 and 15.
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379"
CI_DATABASES = {14, 15}
CLAIM_KEY = "ewas-test-run:claim"
CLAIM_SECONDS = 900  # longer than any one test; every test renews it


@dataclass
class RedisClaim:
    """This run's hold on one Redis database: a key set with NX and a TTL, renewed by every test
    (the test's FLUSHDB removes it too); the database is emptied at the end of the run."""

    url: str
    token: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:"
                                               f"{uuid.uuid4().hex[:8]}")  # fmt: skip

    def take(self, client: redis.Redis) -> bool:
        if client.set(CLAIM_KEY, self.token, nx=True, ex=CLAIM_SECONDS):
            return True
        return client.get(CLAIM_KEY) == self.token.encode()

    def renew(self, client: redis.Redis) -> None:
        client.set(CLAIM_KEY, self.token, ex=CLAIM_SECONDS)

    def release(self) -> None:
        """Leave the database empty, as found (the claim key goes with it), if still ours."""
        with redis.Redis.from_url(self.url) as client:
            if client.get(CLAIM_KEY) == self.token.encode():
                client.flushdb()


def claim_database(url: str) -> RedisClaim:
    """Claim the database ``url`` names, or the first empty unclaimed one when it names none
    (0, a developer's default, and CI's 14 and 15 left alone). Two runs on one server never
    share a database, so never flush each other's."""
    parsed = urlsplit(url)
    if parsed.path.strip("/"):
        claim = RedisClaim(url)
        with redis.Redis.from_url(url) as client:
            if not claim.take(client):
                holder = (client.get(CLAIM_KEY) or b"?").decode()
                pytest.exit(f"{url} is in use by another test run ({holder}); name another "
                            "database or none in TEST_REDIS_URL", returncode=4)  # fmt: skip
        return claim
    with redis.Redis.from_url(url) as client:
        try:
            count = int(client.config_get("databases").get("databases", 16))
        except redis.ResponseError:  # CONFIG disabled
            count = 16
    for number in range(1, count):
        if number in CI_DATABASES:
            continue
        claim = RedisClaim(urlunsplit(parsed._replace(path=f"/{number}")))
        with redis.Redis.from_url(claim.url) as client:
            if client.dbsize() == 0 and claim.take(client):
                return claim
    pytest.exit(f"no empty Redis database left to claim at {url}", returncode=4)


@pytest.fixture(scope="session")
def redis_claim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClaim]:
    """A real Redis database of this run's own; if none answers at TEST_REDIS_URL, the bundled
    redis-server on a port of its own."""
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    server = None
    if not redis_answers(url):
        server = RedisServer(None, tmp_path_factory.mktemp("redis")).start()  # retries a port
        url = server.url
    claim = claim_database(url)
    yield claim
    claim.release()
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_claim: RedisClaim) -> str:
    return redis_claim.url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this session: a SQLite file, or a new PostgreSQL database."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if not configured or configured.startswith("sqlite"):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    server_url = make_url(normalize_database_url(configured))
    name = f"ewas_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def base_config(database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        # Hashing users' passwords with scrypt costs ~0.15 s each, several times per test.
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    }


@pytest.fixture(scope="session")
def migrated(base_config: dict[str, Any]) -> dict[str, Any]:
    """Build the schema once per session through the real migrations."""
    from flask_migrate import upgrade

    app = create_app(base_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return base_config


@pytest.fixture
def make_app(migrated: dict[str, Any]) -> Callable[..., Flask]:
    """Create an app on the test database with extra config overrides."""

    def make(**overrides: Any) -> Flask:
        return create_app({**migrated, **overrides})

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask], redis_client: redis.Redis) -> Iterator[Flask]:
    """The app, on an emptied database holding the default task types, and an emptied Redis."""
    from app.services.task_types import seed_task_types

    application = make_app()
    with application.app_context():
        empty_database()
        seed_task_types()
        db.session.commit()
        yield application
        db.session.remove()
        db.engine.dispose()


def empty_database() -> None:
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def redis_client(redis_claim: RedisClaim) -> Iterator[redis.Redis]:
    """The run's Redis database, emptied. FLUSHDB empties only that database, which this run
    claimed (see ``claim_database``): another run on the same server keeps its own."""
    client = redis.Redis.from_url(redis_claim.url)
    client.flushdb()
    redis_claim.renew(client)
    yield client
    client.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def process_env(base_config: dict[str, Any]) -> dict[str, str]:
    """Environment for engine processes (workers, beat, recorder, web) started by tests."""
    return {
        **os.environ,
        "DATABASE_URL": base_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": base_config["REDIS_URL"],
        "SECRET_KEY": base_config["SECRET_KEY"],
        "FLASK_APP": "wsgi",
        "PYTHONPATH": str(PROJECT_DIR),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., CeleryWorker]]:
    """Start real ``celery worker`` processes; each is stopped when the test ends."""
    workers: list[CeleryWorker] = []

    def start(queues: str = "", concurrency: int = 1, **env: str) -> CeleryWorker:
        worker = CeleryWorker(
            env={**process_env, **env},
            queues=queues or None,
            concurrency=concurrency,
            log_path=tmp_path / f"worker-{len(workers)}.log",
        )
        workers.append(worker)
        worker.start()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_beat(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., BeatProcess]]:
    """Start real ``celery beat`` processes (our scheduler); each is stopped when the test ends."""
    beats: list[BeatProcess] = []

    def start(**env: str) -> BeatProcess:
        beat = BeatProcess({**process_env, **env}, tmp_path / f"beat-{len(beats)}.log").start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a port of its own for this test alone (to flush, stop or restart)."""
    server = RedisServer(None, tmp_path / "own-redis").start()
    yield server
    server.stop()


@pytest.fixture
def start_recorder(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., EngineProcess]]:
    """Start real ``flask recorder`` processes; each is stopped when the test ends."""
    recorders: list[EngineProcess] = []

    def start(*args: str, **env: str) -> EngineProcess:
        recorder = EngineProcess(
            [str(BIN / "flask"), "recorder", *args],
            env={**process_env, **env},
            log_path=tmp_path / f"recorder-{len(recorders)}.log",
        )
        recorders.append(recorder)
        return recorder.start(ready_text="started")

    yield start
    for recorder in recorders:
        recorder.stop()


@dataclass
class Webhook:
    """A local alert webhook: the JSON bodies it received, in order."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """An HTTP server on a port it bound (port 0) that keeps every JSON body POSTed to it."""
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_port}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hook
    server.shutdown()
    server.server_close()


# --- users, sessions and tokens -------------------------------------------------------------


@pytest.fixture
def users(app: Flask) -> dict[Role, User]:
    """One user per role, named after it (password: ``PASSWORDS[role]``)."""
    from app.services.users import create_user

    created = {role: create_user(role.value, role, PASSWORDS[role]) for role in Role}
    db.session.commit()
    return created


@pytest.fixture
def login_as(users: dict[Role, User]) -> Callable[[FlaskClient, Role], str]:
    """Sign ``client`` in through the real login form; returns the session's CSRF token."""

    def login(client: FlaskClient, role: Role) -> str:
        return sign_in(client, role.value, PASSWORDS[role])

    return login


@pytest.fixture
def operator(client: FlaskClient, login_as: Callable[[FlaskClient, Role], str]) -> str:
    """``client`` signed in as an operator; the session's CSRF token (modules may override)."""
    return login_as(client, Role.OPERATOR)


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable[[FlaskClient, Role], str]) -> str:
    """``client`` signed in as a viewer; the session's CSRF token (modules may override)."""
    return login_as(client, Role.VIEWER)


@pytest.fixture
def token_for(users: dict[Role, User]) -> Callable[[Role], str]:
    """Create an API token for the user of ``role``; returns the plaintext token."""
    from app.services.tokens import create_token

    def create(role: Role) -> str:
        issued = create_token(users[role], name=f"{role.value} test token")
        db.session.commit()
        return issued.plaintext

    return create


@pytest.fixture
def api_viewer(token_for: Callable[[Role], str]) -> dict[str, str]:
    """Headers of API requests as a viewer (a bearer token)."""
    return bearer(token_for(Role.VIEWER))


@pytest.fixture
def api_operator(token_for: Callable[[Role], str]) -> dict[str, str]:
    """Headers of API requests as an operator (a bearer token)."""
    return bearer(token_for(Role.OPERATOR))


@pytest.fixture
def idmc_server() -> Iterator[Any]:
    """A local HTTP server answering like IDMC's API (see tests/idmc_server.py)."""
    from tests.idmc_server import IdmcServer

    server = IdmcServer().start()
    yield server
    server.stop()


# --- the engine served over HTTP, and a real browser ------------------------------------------

SCREENSHOTS_DIR = PROJECT_DIR / "tests" / "screenshots"
RUNNING_ON = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@pytest.fixture
def start_web(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Serve the web app from a real ``flask run`` process on a port of its own, with extra
    environment settings (e.g. ``LIVE_POLL_SECONDS="1"``); returns its base URL. Stopped when the
    test ends."""
    servers: list[EngineProcess] = []

    def start(**env: str) -> str:
        # Port 0: the server binds a port of its own and says which (no port picked then closed).
        server = EngineProcess(
            [str(BIN / "flask"), "run", "--host", "127.0.0.1", "--port", "0", "--no-reload"],
            env={**process_env, "FLASK_DEBUG": "0", **env},
            log_path=tmp_path / f"web-{len(servers)}.log",
        )
        servers.append(server)
        server.start(ready_text="Running on")
        return wait_for(lambda: RUNNING_ON.search(server.log()), timeout=10).group(1)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(start_web: Callable[..., str]) -> str:
    """The web app served by a real ``flask run`` process on a port of its own; its base URL."""
    return start_web()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Debian chromium driven by Playwright (never Playwright's own browser download)."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed for browser tests: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page at 1280 px; screenshots go to tests/screenshots/."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as tests/screenshots/<name>.png for a reviewer to look at."""
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    # caret="initial": hiding the caret puts an inline style on the focused element, which htmx
    # would copy when it swaps that element again (a CSP violation the page itself never causes).
    page.screenshot(path=str(path), full_page=True, caret="initial")
    return path
