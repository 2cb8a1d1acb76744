"""Celery's result backend for the engine: none, quietly.

The engine records states and results itself (tracking and the recorder), so Celery keeps no
results. Celery's own ``DisabledBackend`` raises on every read, and since Celery 5.6 a worker
reads a revoked task's state before marking it revoked, logging "Failed to mark task ... as
revoked in backend: No result backend is configured" on every cancel. This one answers that
nothing is stored (PENDING) and stores nothing, so a cancel is silent.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import DisabledBackend


class NoResults(DisabledBackend):
    """Stores nothing; every task's stored state is PENDING (i.e. unknown to this backend)."""

    def get_state(self, task_id: Any) -> str:
        return states.PENDING

    get_status = get_state

    def as_uri(self, *args: Any, **kwargs: Any) -> str:
        return "disabled://"
