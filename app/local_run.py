"""``flask run-local``: web, worker, beat and recorder in one terminal; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import click
from flask import current_app
from flask.cli import with_appcontext

from app.config import INSTANCE_DIR
from app.local_redis import redis_answers, start_bundled_redis

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]


def engine_processes(host: str, port: int, concurrency: int) -> list[Process]:
    """The processes of a local engine; production runs each with its own command (README)."""
    from celeryconfig import TASK_QUEUES

    return [
        Process("web", [str(BIN / "flask"), "run", "--host", host, "--port", str(port)]),
        Process(
            "worker",
            [
                str(BIN / "celery"), "-A", "wsgi:celery", "worker", "--loglevel", "INFO",
                "-Q", ",".join(TASK_QUEUES), "--concurrency", str(concurrency),
                "--hostname", "local@%h",
            ],
        ),
        Process("recorder", [str(BIN / "flask"), "recorder"]),
        Process(
            "beat",
            [
                str(BIN / "celery"), "-A", "wsgi:celery", "beat", "--loglevel", "INFO",
                "-S", "app.scheduler.beat:RedisScheduler",
            ],
        ),
    ]  # fmt: skip


def _pipe_output(name: str, stream: IO[str]) -> None:
    width = 7
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{name:<{width}}| {line}")
        sys.stdout.flush()


def _stop(children: list[tuple[Process, subprocess.Popen]], grace: float = 10.0) -> None:
    for _process, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for _process, child in children:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.wait(remaining)
        except subprocess.TimeoutExpired:
            child.kill()


def ensure_predefined_schedules() -> None:
    """Create the predefined schedules that are missing, as ``flask setup-scheduled-tasks``
    does (existing ones, edited or disabled, are left alone), so a local run has work to do."""
    from app.extensions import db
    from app.scheduler.predefined import setup_predefined

    created, found = setup_predefined()
    db.session.commit()
    if created:
        names = ", ".join(schedule.name for schedule in created)
        click.echo(f"Created the predefined schedules: {names}.")
    else:
        click.echo(f"The {len(found)} predefined schedules exist; left as they are.")


@click.command("run-local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option(
    "--no-predefined", is_flag=True, help="Do not create the predefined schedules when missing."
)
@with_appcontext
def run_local_command(host: str, port: int, concurrency: int, no_predefined: bool) -> None:
    """Run the whole engine locally, starting a bundled Redis if none answers at REDIS_URL, and
    create the predefined schedules that are missing (unless --no-predefined)."""
    redis_url = current_app.config["REDIS_URL"]
    children: list[tuple[Process, subprocess.Popen]] = []
    if not redis_answers(redis_url):
        click.echo(f"No Redis at {redis_url}: starting the bundled redis-server.")
        redis_port = urlparse(redis_url).port or 6379
        bundled = start_bundled_redis(redis_url, INSTANCE_DIR / f"redis-{redis_port}")
        children.append((Process("redis", []), bundled))
    if not no_predefined:
        try:
            ensure_predefined_schedules()
        except Exception:
            _stop(children)
            raise

    env = {**os.environ, "FLASK_APP": "wsgi", "PYTHONUNBUFFERED": "1"}
    stop_requested = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())

    for process in engine_processes(host, port, concurrency):
        child = subprocess.Popen(
            process.argv,
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order.
        )
        reader = threading.Thread(target=_pipe_output, args=(process.name, child.stdout))
        reader.daemon = True
        reader.start()
        children.append((process, child))
    click.echo(f"EWAS task engine running: http://{host}:{port}/tasks/  (Ctrl-C stops everything)")

    failed: Process | None = None
    while not stop_requested.wait(0.5):
        failed = next((p for p, c in children if c.poll() is not None), None)
        if failed is not None:
            break
    click.echo("Stopping...")
    _stop(list(reversed(children)))
    if failed is not None:
        raise click.ClickException(f"process {failed.name!r} exited; everything was stopped")
