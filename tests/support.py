"""Helpers shared by the tests: HTTP requests as HTMX, sign-in, CSRF and API tokens send them,
and real engine processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from app.models import Role

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# --- requests: HTMX, sign-in, CSRF, API tokens -----------------------------------------------

HTMX = {"HX-Request": "true"}  # a targeted HTMX request: the page's fragment alone
PASSWORDS = {role: f"{role.value}-password-1" for role in Role}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def htmx(etag: str | None = None, csrf: str | None = None) -> dict[str, str]:
    """The headers of an HTMX request, revalidating ``etag`` and sending the ``csrf`` token
    (as ``hx-headers`` on the page's body does) when given."""
    headers = dict(HTMX)
    if etag is not None:
        headers["If-None-Match"] = etag
    if csrf is not None:
        headers["X-CSRFToken"] = csrf
    return headers


def bearer(token: str) -> dict[str, str]:
    """The headers of an API request authenticated by ``token``."""
    return {"Authorization": f"Bearer {token}"}


def csrf_token_in(html: str) -> str:
    """The CSRF token a page exposes in its ``<meta name="csrf-token">``."""
    match = CSRF_META.search(html)
    assert match, "the page has no csrf-token meta tag"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str) -> str:
    """Sign ``client`` in through the real login form; returns the session's CSRF token."""
    token = csrf_token_in(client.get("/tasks/login/").text)
    response = client.post(
        "/tasks/login/", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text[:300]
    return token


# --- engine processes ---------------------------------------------------------------------------

# Connections to it are refused: a privileged port nothing serves on a test machine. (A port
# picked free then closed could meanwhile be taken by a server another test starts.)
REFUSED_PORT = 1


def free_ports(count: int) -> list[int]:
    """Distinct free ports (all sockets are held until every port is chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.1):
    """Poll ``condition`` until it returns something truthy; fail with a clear message if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition!r}")
        time.sleep(interval)


class EngineProcess:
    """Any other engine process (``flask recorder``, beat...) run as a subprocess."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self, ready_text: str | None = None, timeout: float = 60.0) -> EngineProcess:
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.argv,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if ready_text:
            wait_for(lambda: self._ready(ready_text), timeout=timeout)
        return self

    def _ready(self, text: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.argv[:3]} exited early:\n{self.log()}")
        return text in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (its own session: a worker's pool included)."""
        assert self.process is not None
        os.killpg(self.process.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.process.wait(30)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class CeleryWorker(EngineProcess):
    """A real ``celery -A wsgi:celery worker`` subprocess, logging to a file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        queues: str | None = None,
        concurrency: int = 1,
        pool: str = "prefork",
        include: str = "tests.sample_tasks",
    ) -> None:
        from celeryconfig import TASK_QUEUES

        self.hostname = f"test-{os.getpid()}-{time.monotonic_ns()}@localhost"
        argv = [
            str(BIN / "celery"), "-A", "wsgi:celery", "worker", "--loglevel", "INFO",
            "-Q", queues or ",".join(TASK_QUEUES), "--concurrency", str(concurrency),
            "--pool", pool, "--hostname", self.hostname, "--without-gossip", "--without-mingle",
            "--include", include,
        ]  # fmt: skip
        super().__init__(argv, env, log_path)

    def start(self, ready_text: str | None = " ready.", timeout: float = 60.0) -> CeleryWorker:
        super().start(ready_text, timeout)
        return self

    def kill_all(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crashed machine would."""
        self.kill(signal.SIGKILL)


def scraped(text: str) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` text parsed by Prometheus's own parser: {(sample name, labels): value}, so
    tests read figures, not the way a number is printed."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample of ``/metrics`` text, or None when it is absent."""
    return scraped(text).get((name, frozenset(labels.items())))
