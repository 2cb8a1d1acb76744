"""Retry policies per task type (spec 7.1), as base task classes, and the ``tracked`` decorator.

Retrieval retries hard (network trouble passes); processing barely (a processing failure usually
means bad data, which a retry will not fix); the others sit in between. A schedule may override
max retries and backoff for the runs it sends (the ``ewas_retry_policy`` message header).
"""

from __future__ import annotations

import http.client
import inspect
import urllib.error
from collections.abc import Callable
from typing import Any, ClassVar

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.celery_app import AppContextTask


class TransientNetworkError(Exception):
    """Raise it for answers worth retrying: HTTP 429/5xx, a truncated body..."""


class DataValidationError(Exception):
    """The data is wrong; retrying will not fix it."""


NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    urllib.error.URLError,
    http.client.HTTPException,
    TransientNetworkError,
)


class TypedTask(AppContextTask):
    """A task that declares its type; tracking stores it and the queue routes follow its name."""

    abstract = True
    task_type: ClassVar[str | None] = None
    tracked_arguments: ClassVar[dict[str, str]] = {}
    positional_names: ClassVar[tuple[str, ...]] = ()

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        policy = (self.request.headers or {}).get("ewas_retry_policy") or {}
        if "max_retries" in policy:
            kwargs["max_retries"] = policy["max_retries"]
        if policy.get("backoff_seconds") is not None and kwargs.get("eta") is None:
            kwargs["countdown"] = float(policy["backoff_seconds"]) * 2 ** (
                self.request.retries or 0
            )
        return super().retry(*args, **kwargs)


class RetrievalTask(TypedTask):
    abstract = True
    task_type = "retrieval"
    autoretry_for = NETWORK_ERRORS
    dont_autoretry_for = (DataValidationError,)
    max_retries = 6
    retry_backoff = 2
    retry_backoff_max = 600
    retry_jitter = True


class ProcessingTask(TypedTask):
    abstract = True
    task_type = "processing"
    autoretry_for = (OperationalError,)  # a database hiccup, never the data itself
    dont_autoretry_for = (DataValidationError,)
    max_retries = 1
    retry_backoff = 30
    retry_jitter = True


class AggregationTask(TypedTask):
    abstract = True
    task_type = "aggregation"
    autoretry_for = (OperationalError,)
    max_retries = 3
    retry_backoff = 60
    retry_backoff_max = 900
    retry_jitter = True


class MonitoringTask(TypedTask):
    """No retries: the next scheduled check comes soon, and a late one reports stale health."""

    abstract = True
    task_type = "monitoring"
    max_retries = 0


class MaintenanceTask(TypedTask):
    abstract = True
    task_type = "maintenance"
    autoretry_for = (OperationalError,)
    max_retries = 2
    retry_backoff = 300
    retry_jitter = True


POLICIES: dict[str, type[TypedTask]] = {
    cls.task_type: cls  # type: ignore[misc]
    for cls in (RetrievalTask, ProcessingTask, AggregationTask, MonitoringTask, MaintenanceTask)
}


def tracked(
    task_type: str,
    *,
    source_arg: str = "source_id",
    variable_arg: str = "variable_id",
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a task of ``task_type``: it gets that type's retry policy, and tracking takes its
    source and variable from the arguments named ``source_arg`` and ``variable_arg``."""
    if task_type not in POLICIES:
        raise ValueError(f"unknown task type {task_type!r}; known: {sorted(POLICIES)}")

    def decorate(function: Callable[..., Any]) -> Any:
        names = tuple(inspect.signature(function).parameters)
        if options.get("bind"):
            names = names[1:]
        return shared_task(
            base=POLICIES[task_type],
            tracked_arguments={"source_id": source_arg, "variable_id": variable_arg},
            positional_names=names,
            **options,
        )(function)

    return decorate
