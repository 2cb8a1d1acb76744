"""Retry policies per task type (spec 7.1), as base task classes, and the ``tracked`` decorator.

Retrieval retries hard (network trouble passes); processing barely (a processing failure usually
means bad data, which a retry will not fix); the others sit in between. A schedule may override
max retries and backoff for the runs it sends (the ``ewas_retry_policy`` message header).

Backoff is ours, not Celery's: Celery's ``retry_jitter`` draws the countdown anywhere between 0
and the exponential value ("full jitter"), so seven attempts could all fall within a few seconds
and a one-minute outage exhausted them. Here retry ``n`` waits ``base * 2**n`` give or take 25%,
so each wait is longer than the previous one could have been, capped so that the countdown plus
the longest task still fits in the broker's visibility timeout (a message held past it is handed
to a second worker).
"""

from __future__ import annotations

import http.client
import inspect
import random
import urllib.error
from collections.abc import Callable, Mapping
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


BACKOFF_JITTER = 0.25
# The broker's default visibility timeout (kombu's Redis transport), when none is configured.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0


def backoff_delay(
    base: float,
    retries: int,
    cap: float,
    jitter: float = BACKOFF_JITTER,
    draw: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``retries`` (0 for the first): ``base * 2**retries``
    times a factor drawn in ``[1 - jitter, 1 + jitter]``, at most ``cap``.

    With ``jitter`` below 1/3 the shortest wait of retry ``n`` exceeds the longest of retry
    ``n - 1``, so the sequence always grows until it reaches the cap."""
    if base < 0 or retries < 0 or cap < 0 or not 0 <= jitter < 1:
        raise ValueError("backoff needs base, retries and cap >= 0 and 0 <= jitter < 1")
    nominal = base * 2.0 ** min(retries, 64)
    return min(cap, nominal * (1 + jitter * (2 * draw() - 1)))


def backoff_cap(conf: Mapping[str, Any], maximum: float | None = None) -> float:
    """The longest countdown the broker tolerates: the visibility timeout less the task time
    limit (a delayed message stays unacknowledged until its task ends), and at most ``maximum``.
    """
    options = conf.get("broker_transport_options") or {}
    visibility = float(options.get("visibility_timeout") or DEFAULT_VISIBILITY_TIMEOUT)
    headroom = visibility - float(conf.get("task_time_limit") or 0)
    cap = headroom if headroom > 0 else visibility / 2
    return cap if maximum is None else min(cap, maximum)


class TypedTask(AppContextTask):
    """A task that declares its type; tracking stores it and the queue routes follow its name.

    ``backoff_base`` (seconds) and ``backoff_max`` set the automatic retries' waits (see
    ``backoff_delay``); Celery's own ``retry_backoff`` stays off. A task may still pass
    ``countdown`` or ``eta`` to ``self.retry`` itself."""

    abstract = True
    task_type: ClassVar[str | None] = None
    tracked_arguments: ClassVar[dict[str, str]] = {}
    positional_names: ClassVar[tuple[str, ...]] = ()
    retry_backoff = False
    backoff_base: ClassVar[float | None] = None
    backoff_max: ClassVar[float | None] = None

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        policy = (self.request.headers or {}).get("ewas_retry_policy") or {}
        if "max_retries" in policy:
            kwargs["max_retries"] = policy["max_retries"]
        base = policy.get("backoff_seconds")
        if base is None:
            base = self.backoff_base
        if base is not None and kwargs.get("eta") is None and kwargs.get("countdown") is None:
            kwargs["countdown"] = backoff_delay(
                float(base),
                self.request.retries or 0,
                backoff_cap(self.app.conf, self.backoff_max),
            )
        return super().retry(*args, **kwargs)


class RetrievalTask(TypedTask):
    abstract = True
    task_type = "retrieval"
    autoretry_for = NETWORK_ERRORS
    dont_autoretry_for = (DataValidationError,)
    max_retries = 6
    backoff_base = 2
    backoff_max = 600


class ProcessingTask(TypedTask):
    abstract = True
    task_type = "processing"
    autoretry_for = (OperationalError,)  # a database hiccup, never the data itself
    dont_autoretry_for = (DataValidationError,)
    max_retries = 1
    backoff_base = 30


class AggregationTask(TypedTask):
    abstract = True
    task_type = "aggregation"
    autoretry_for = (OperationalError,)
    max_retries = 3
    backoff_base = 60
    backoff_max = 900


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
    backoff_base = 300


POLICIES: dict[str, type[TypedTask]] = {
    cls.task_type: cls
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
