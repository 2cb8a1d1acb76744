"""Helpers for scheduler tests: real beat processes, and the messages they left in Redis."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import redis

from tests.support import BIN, PROJECT_DIR


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
