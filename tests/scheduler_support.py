"""Helpers for scheduler tests: real beat processes, and the messages they left in Redis."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from app.models import ScheduledTask
from app.scheduler.timing import from_ms, next_interval, to_ms
from tests.support import BIN, PROJECT_DIR, free_port, wait_for


def queued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """Every Celery message waiting in a queue list (the broker is the test Redis database)."""
    from celeryconfig import TASK_QUEUES

    messages = []
    for key in client.keys("*"):
        name = key.decode()
        base = name.split("\x06\x16")[0]  # kombu's priority-suffixed lists
        if base in TASK_QUEUES and client.type(key) == b"list":
            messages.extend(json.loads(raw) for raw in client.lrange(key, 0, -1))
    return messages


def scheduled_headers(client: redis.Redis) -> list[dict[str, Any]]:
    """Headers of the queued messages that carry a schedule id."""
    return [m["headers"] for m in queued_messages(client) if "ewas_schedule_id" in m["headers"]]


class BeatProcess:
    """A real ``celery -A wsgi:celery beat -S app.scheduler.beat:RedisScheduler`` subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> BeatProcess:
        argv = [
            str(BIN / "celery"), "-A", "wsgi:celery", "beat", "--loglevel", "INFO",
            "-S", "app.scheduler.beat:RedisScheduler",
        ]  # fmt: skip
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                argv, cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def leader_pid(client: redis.Redis, prefix: str = "ewas:sched") -> int | None:
    """The pid in the current lock token (``<fence>:<host>:<pid>:<nonce>``), if any."""
    token = client.get(f"{prefix}:lock")
    return int(token.decode().split(":")[2]) if token else None


def fired(client: redis.Redis) -> Counter:
    return Counter((h["ewas_schedule_id"], h["ewas_occurrence"]) for h in scheduled_headers(client))


def expected(schedules: list[ScheduledTask], until: datetime) -> set[tuple[int, str]]:
    """Every occurrence of the interval schedules from their creation up to ``until``."""
    wanted = set()
    for s in schedules:
        anchor = occurrence = from_ms(to_ms(s.created_at))  # entries keep milliseconds
        while (occurrence := next_interval(anchor, s.interval_every, occurrence)) <= until:
            wanted.add((s.id, occurrence.isoformat()))
    return wanted


def leader_among(client: redis.Redis, beats: list[BeatProcess]) -> BeatProcess:
    pids = {b.pid: b for b in beats if b.running()}
    return pids[wait_for(lambda: leader_pid(client) in pids and leader_pid(client), timeout=60)]


class RedisServer:
    """A redis-server of a test's own (the bundled binary). Without persistence a restart brings
    it back empty (a Redis restart without AOF, a failover to an empty replica); with
    ``append_only`` it comes back with every acknowledged write, as a production Redis does.

    redis-server cannot bind port 0 and say which port it got, so with ``port=None`` it is
    started on a free port and, if that port was taken meanwhile (it then exits, or another
    server answers there), on another, a few times. A restart keeps the port it got."""

    ATTEMPTS = 5

    def __init__(self, port: int | None, data_dir: Path, append_only: bool = False) -> None:
        self.port, self.data_dir, self.append_only = port, data_dir, append_only
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "the server has not started yet"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        known = self.port is not None  # given, or a restart: that port or none
        for _attempt in range(1 if known else self.ATTEMPTS):
            self.port = self.port if known else free_port()
            if self._start_on_port():
                return self
        raise AssertionError(f"redis-server did not start on port {self.port} ({self.data_dir})")

    def _start_on_port(self) -> bool:
        from app.local_redis import bundled_redis_server

        self.process = subprocess.Popen(
            [str(bundled_redis_server()), "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.data_dir), "--save", "",
             *(["--appendonly", "yes", "--appendfsync", "always"] if self.append_only
               else ["--appendonly", "no"])],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        process = self.process
        try:
            wait_for(lambda: process.poll() is not None or self._answers_as(process.pid), 10)
        except AssertionError:
            self.stop()
            return False
        # Exited: most likely the port was taken after free_port() chose it.
        return process.poll() is None

    def _answers_as(self, pid: int) -> bool:
        """This very process answers on the port (not another server that took it)."""
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
            return client.info("server")["process_id"] == pid
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
