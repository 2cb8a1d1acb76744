"""Tasks used by the tracking tests; workers load them with ``--include tests.sample_tasks``."""

from __future__ import annotations

import logging
import os
import time

import redis
from celery import shared_task
from celery.utils.log import get_task_logger
from flask import current_app

from app.tracking import DataValidationError, create_task_execution, tracked

task_log = get_task_logger(__name__)


@shared_task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@shared_task(name="tests.fail")
def fail(message: str) -> None:
    raise ValueError(message)


def _count(key: str) -> int:
    return redis.Redis.from_url(current_app.config["REDIS_URL"]).incr(f"test:count:{key}")


@tracked("retrieval", name="tests.flaky", backoff_base=0.4)
def flaky(key: str, failures: int, source_id: int | None = None) -> str:
    """Fails with a network error ``failures`` times, then succeeds."""
    if _count(key) <= failures:
        raise ConnectionError(f"network down (call {key})")
    return "fetched"


@tracked("retrieval", name="tests.unreachable", backoff_base=0.1, max_retries=2)
def unreachable(url: str) -> None:
    raise ConnectionError(f"cannot reach {url}")


@tracked("processing", name="tests.invalid_data")
def invalid_data() -> None:
    raise DataValidationError("row 3: value is not a number")


@shared_task(name="tests.sleep")
def sleep(seconds: float, marker: str | None = None) -> float:
    if marker:
        _count(marker)
    time.sleep(seconds)
    return seconds


@shared_task(name="tests.talk_slowly")
def talk_slowly(lines: int, pause: float) -> int:
    """Log a line, then wait: what a long retrieval reporting its progress looks like."""
    for number in range(lines):
        task_log.info("step %d of %d", number + 1, lines)
        time.sleep(pause)
    return lines


@shared_task(name="tests.chatty")
def chatty(lines: int) -> int:
    task_log.info("task logger says hello")
    logging.getLogger("ewas.sample").warning("root-propagating logger warns")
    logging.getLogger("ewas.sample").debug("debug is not kept")
    for number in range(lines):
        task_log.info("line %d", number)
    return lines


@shared_task(name="tests.burn")
def burn(cpu_seconds: float, megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    for index in range(0, len(block), 4096):
        block[index] = 1
    deadline = time.process_time() + cpu_seconds
    total = 0
    while time.process_time() < deadline:
        total += 1
    return len(block)


@shared_task(name="tests.with_secrets")
def with_secrets(data: dict, password: str = "", api_key: str = "") -> int:
    return len(data)


@shared_task(name="tests.annotated", bind=True)
def annotated(self, source_id: int) -> str:
    create_task_execution(self.request.id, "retrieval", source_id=source_id)
    return "ok"


@shared_task(name="tests.big_result")
def big_result(size: int) -> str:
    return "x" * size


@shared_task(name="tests.pid")
def pid() -> int:
    return os.getpid()
