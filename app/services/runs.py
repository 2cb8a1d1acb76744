"""Runs for the pages and the API: filters, keyset pages, one run with its steps in order, and
the operator actions on a run (resume from the failed step, run again), audited.

Pages are cut by keyset on (created_at, id), like the executions list, never OFFSET.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import Select, select

from app.bounds import key_fits
from app.errors import DomainError, NotFound, Unavailable
from app.extensions import db
from app.models import PipelineRun, RunStep, ScheduledTask, TaskExecution
from app.paging import token_page
from app.runs.resend import Plan, again_plan, resume_plan, run_steps
from app.services.audit import record_audit
from app.services.schedules import run_now

KEY = (PipelineRun.created_at, PipelineRun.id)
NEWEST_FIRST = (PipelineRun.created_at.desc(), PipelineRun.id.desc())


def filtered(args: dict[str, Any]) -> Select[PipelineRun]:
    """Runs matching the list filters: schedule (id), status (list), task_name (the root's),
    created_from (inclusive) / created_to (exclusive)."""
    query = select(PipelineRun)
    if args.get("schedule") is not None:
        query = query.where(PipelineRun.schedule_id == args["schedule"])
    if args.get("status"):
        query = query.where(PipelineRun.status.in_(args["status"]))
    if args.get("task_name"):
        query = query.where(PipelineRun.task_name == args["task_name"])
    if args.get("created_from") is not None:
        query = query.where(PipelineRun.created_at >= args["created_from"])
    if args.get("created_to") is not None:
        query = query.where(PipelineRun.created_at < args["created_to"])
    return query


def page(args: dict[str, Any]) -> dict[str, Any]:
    """One page of ``args["page_size"]`` runs, newest first, with next/previous cursors."""
    return token_page(filtered(args), KEY, args["page_size"], args.get("cursor"))


def get_run(run_id: int) -> PipelineRun:
    run = db.session.get(PipelineRun, run_id) if key_fits(PipelineRun, run_id) else None
    if run is None:
        raise NotFound(_("No run with id %(id)s.", id=run_id))
    return run


def run_of_execution(task_id: str) -> PipelineRun | None:
    """The run an execution belongs to, if any."""
    return db.session.scalar(
        select(PipelineRun)
        .join(RunStep, RunStep.run_id == PipelineRun.id)
        .where(RunStep.task_id == task_id)
    )


@dataclass(frozen=True)
class StepView:
    """A step in the order it ran (or would have), with its execution when it has one."""

    step: RunStep
    execution: TaskExecution | None
    state: str  # an execution status, waiting, not_run or replaced
    depth: int

    @property
    def task_name(self) -> str | None:
        return (self.execution.task_name if self.execution else None) or self.step.task_name

    @property
    def started_at(self) -> datetime | None:
        return self.execution.started_at if self.execution else None

    @property
    def completed_at(self) -> datetime | None:
        return self.execution.completed_at if self.execution else None


@dataclass(frozen=True)
class RunDetail:
    run: PipelineRun
    steps: list[StepView]
    schedule: ScheduledTask | None

    @property
    def failed_step(self) -> StepView | None:
        return next((s for s in self.steps if s.step.task_id == self.run.failed_step_task_id), None)

    @property
    def can_resume(self) -> bool:
        return self.run.status == "failure"


def detail(run_id: int) -> RunDetail:
    """The run with its steps: the root first, then each step after the one it follows."""
    run = get_run(run_id)
    steps, executions, states = run_steps(run)
    children: dict[str | None, list[RunStep]] = {}
    known = {s.task_id for s in steps}
    by_id = {s.task_id: s for s in steps}
    for step in steps:
        after = step.after_task_id
        if after is None and step.replaces_task_id in by_id:
            after = by_id[step.replaces_task_id].after_task_id
        parent = after if after in known and step.task_id != run.root_task_id else None
        children.setdefault(parent, []).append(step)

    def when(step: RunStep) -> tuple:
        execution = executions.get(step.task_id)
        moment = execution.created_at if execution is not None else None
        return (step.task_id != run.root_task_id, moment is None, moment or step.created_at,
                step.id)  # fmt: skip

    ordered: list[StepView] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for step in sorted(children.get(parent, ()), key=when):
            if step.task_id in seen:
                continue
            seen.add(step.task_id)
            ordered.append(
                StepView(step, executions.get(step.task_id), states[step.task_id], depth)
            )
            walk(step.task_id, depth + 1)

    walk(None, 0)
    schedule = db.session.get(ScheduledTask, run.schedule_id) if run.schedule_id else None
    return RunDetail(run, ordered, schedule)


def latest_by_schedule(schedule_ids: list[int]) -> dict[int, PipelineRun]:
    """Each schedule's newest run (one indexed lookup per schedule, in one query)."""
    if not schedule_ids:
        return {}
    newest = (
        select(PipelineRun.id)
        .where(PipelineRun.schedule_id == ScheduledTask.id)
        .order_by(*NEWEST_FIRST)
        .limit(1)
        .correlate(ScheduledTask)
        .scalar_subquery()
    )
    wanted = select(newest).where(ScheduledTask.id.in_(schedule_ids))
    runs = db.session.scalars(select(PipelineRun).where(PipelineRun.id.in_(wanted)))
    return {run.schedule_id: run for run in runs if run.schedule_id is not None}


def resume(run_id: int) -> list[str]:
    """Resume a failed run from its failed step; the new task ids, first first (audited)."""
    run = get_run(run_id)
    celery = current_app.extensions["celery"]
    try:
        plan = resume_plan(run, celery)
    except DomainError as error:
        _refused("run.resume", run_id, error)
        raise
    return _send("run.resume", run, plan, {"replaces": plan.replaces})


def run_again(run_id: int) -> list[str]:
    """Send the run's whole job anew (a new run); the new task ids (audited).

    A scheduled run is sent again through its schedule, with its current definition.
    """
    run = get_run(run_id)
    schedule = db.session.get(ScheduledTask, run.schedule_id) if run.schedule_id else None
    if schedule is not None:
        sent = run_now(schedule)
        record_audit(
            "run.again",
            "run",
            run.id,
            outcome="ok" if sent.error is None else "error",
            details={"schedule_id": schedule.id, "task_id": sent.task_id, "error": sent.error},
        )
        db.session.commit()
        if sent.error is not None or sent.task_id is None:  # run_now sets task_id on every run
            raise Unavailable(_("The run could not be sent: %(error)s", error=sent.error))
        return [sent.task_id]
    try:
        plan = again_plan(run, current_app.extensions["celery"])
    except DomainError as error:
        _refused("run.again", run_id, error)
        raise
    return _send("run.again", run, plan, {})


def _refused(action: str, run_id: int, error: DomainError) -> None:
    record_audit(action, "run", run_id, outcome=error.code, details={"message": error.message})
    db.session.commit()


def _send(action: str, run: PipelineRun, plan: Plan, details: dict[str, Any]) -> list[str]:
    """Audit, commit, then send: the audit entry exists before the message does."""
    ids = plan.task_ids
    entry = record_audit(action, "run", run.id, details={"task_ids": ids, **details})
    db.session.commit()
    try:
        plan.send(current_app.extensions["celery"])
    except (KombuError, RedisError, OSError) as error:
        entry.outcome = "error"
        entry.details = {**(entry.details or {}), "error": str(error)}
        db.session.commit()
        raise Unavailable(_("The broker did not answer; nothing was sent.")) from error
    return ids
