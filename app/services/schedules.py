"""Schedules as operators change them from the pages and the API: create, edit, enable or
disable, delete and run now, each with its audit entry.

The scheduler (:mod:`app.scheduler.service`) validates and writes, and writes each change
through to Redis after the commit; these add the audit entry to the same transaction. A
refused change raises its DomainError before any entry is added. Like every service they only
add and mutate: the view that calls them commits (or rolls back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.models import ScheduledTask, ScheduleRun
from app.scheduler import service
from app.services.audit import record_audit


def _audit(action: str, schedule_id: int, **details: Any) -> None:
    record_audit(action, "schedule", schedule_id, details=details)


def create(values: Mapping[str, Any]) -> ScheduledTask:
    """Add a schedule (it starts timing from now); the entry names it."""
    schedule = service.create_schedule(**values)
    _audit("schedule.create", schedule.id, name=schedule.name)
    return schedule


def edit(schedule: ScheduledTask, values: Mapping[str, Any]) -> ScheduledTask:
    """Save the schedule form (it posts every field); the entry names the fields that changed."""
    before = service.current_values(schedule)
    service.update_schedule(schedule, **values)
    changed = sorted(f for f, v in service.current_values(schedule).items() if before[f] != v)
    _audit("schedule.update", schedule.id, fields=changed)
    return schedule


def set_enabled(schedule: ScheduledTask, enabled: bool) -> ScheduledTask:
    """Enable (next occurrence after now, no catch-up) or disable the schedule."""
    service.set_enabled(schedule, enabled)
    _audit("schedule.enable" if enabled else "schedule.disable", schedule.id, fields=["enabled"])
    return schedule


def change(schedule: ScheduledTask, values: Mapping[str, Any]) -> ScheduledTask:
    """Apply the fields an API call sent (a replace sends them all); the entry names them, and a
    change of ``enabled`` alone is an enable or a disable."""
    if set(values) == {"enabled"}:
        return set_enabled(schedule, values["enabled"])
    service.update_schedule(schedule, **values)
    _audit("schedule.update", schedule.id, fields=sorted(values))
    return schedule


def delete(schedule: ScheduledTask) -> None:
    """Delete the schedule and its run history; the entry keeps its name."""
    schedule_id, name = schedule.id, schedule.name
    service.delete_schedule(schedule)
    _audit("schedule.delete", schedule_id, name=name)


def run_now(schedule: ScheduledTask) -> ScheduleRun:
    """Send the schedule's task at once (its next due time is unchanged) and audit the run."""
    run = service.run_now(schedule)
    record_audit(
        "schedule.run",
        "schedule",
        schedule.id,
        outcome="ok" if run.error is None else "error",
        details={"task_id": run.task_id, "error": run.error},
    )
    return run
