"""Publishing one run of a schedule: the task (or a chain) with the tracking headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from celery import Celery, chain


def run_headers(data: dict[str, Any], occurrence: datetime, kind: str) -> dict[str, Any]:
    """Headers the tracking layer reads at publish time (schedule, occurrence, retry policy)."""
    headers: dict[str, Any] = {
        "ewas_schedule_id": data["id"],
        "ewas_occurrence": occurrence.astimezone(UTC).isoformat(),
        "ewas_run_kind": kind,
    }
    if data.get("retry_policy"):
        headers["ewas_retry_policy"] = data["retry_policy"]
    return headers


def send(
    celery: Celery,
    data: dict[str, Any],
    occurrence: datetime,
    kind: str,
    task_id: str,
    root: bool = False,
) -> list[str]:
    """Send one run; returns the task ids, first step first (the first is ``task_id``).

    ``root``: the run is rooted at its first step even when sent from inside a worker's task
    (Celery would make it part of that task's tree, and of its pipeline run).

    A chain's steps each get their own id; Celery links them through parent and root ids,
    and each step runs only when the previous one succeeded. Follow-ups are immutable: they
    get their configured arguments, not the previous step's result.
    """
    headers = run_headers(data, occurrence, kind)
    common: dict[str, Any] = {"headers": headers}
    if data.get("priority") is not None:
        common["priority"] = data["priority"]
    first_options = dict(common, task_id=task_id)
    if root:
        first_options["root_id"] = task_id
    if data.get("queue"):
        first_options["queue"] = data["queue"]
    first = celery.signature(
        data["task"], args=data["args"], kwargs=data["kwargs"], **first_options
    )
    if not data.get("chain"):
        first.apply_async()
        return [task_id]
    steps = [first]
    for step in data["chain"]:
        steps.append(
            celery.signature(
                step["task"],
                args=step["args"],
                kwargs=step["kwargs"],
                immutable=True,
                task_id=str(uuid4()),
                **common,
            )
        )
    chain(*steps).apply_async(**({"root_id": task_id} if root else {}))
    return [s.options["task_id"] for s in steps]
