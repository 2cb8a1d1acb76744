"""Execution retention: deleting old executions in batches, each batch its own short
transaction (the ``cleanup_old_executions`` task and ``flask cleanup-old-executions``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, delete, func, select

from app.extensions import db
from app.models import TaskExecution, TaskStatus


def old_executions(cutoff: datetime, statuses: list[TaskStatus]) -> Select:
    """Executions created before ``cutoff`` with one of ``statuses`` (all when empty)."""
    query = select(TaskExecution.id).where(TaskExecution.created_at < cutoff)
    if statuses:
        query = query.where(TaskExecution.status.in_(statuses))
    return query


def count_old(cutoff: datetime, statuses: list[TaskStatus]) -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(old_executions(cutoff, statuses).subquery())
        )
        or 0
    )


def delete_batch(cutoff: datetime, statuses: list[TaskStatus], batch_size: int) -> int:
    """Delete up to ``batch_size`` matching executions, oldest ids first; returns how many.

    The caller commits after each batch, so a cleanup never holds one long transaction.
    """
    ids = list(
        db.session.scalars(
            old_executions(cutoff, statuses).order_by(TaskExecution.id).limit(batch_size)
        )
    )
    if ids:
        db.session.execute(delete(TaskExecution).where(TaskExecution.id.in_(ids)))
    return len(ids)
