"""What "resume from the failed step" and "run again" send, built from a run's recorded steps.

Resume sends the failed step again with its exact recorded arguments, followed by the steps that
did not run (with the arguments their chain carried), as one chain rooted at the run's root: the
new executions join the same run, each linked by ``retry_of`` to the step it replaces. A new
run is the root sent again with its recorded arguments and the chain it announced.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, chain
from flask_babel import gettext as _
from sqlalchemy import select

from app.errors import Conflict
from app.extensions import db
from app.models import PipelineRun, RunStatus, RunStep, StepOrigin, TaskExecution
from app.runs.status import NOT_RUN, StepState, step_states

RETRY_OF = "ewas_retry_of"


@dataclass
class Plan:
    """Signatures to send as one chain (first step first), and the task ids they will have."""

    signatures: list[Any] = field(default_factory=list)
    root_id: str | None = None

    @property
    def task_ids(self) -> list[str]:
        return [s.options["task_id"] for s in self.signatures]

    @property
    def replaces(self) -> dict[str, str]:
        """New task id -> the step it is sent in place of (resume only)."""
        return {
            s.options["task_id"]: s.options["headers"][RETRY_OF]
            for s in self.signatures
            if RETRY_OF in (s.options.get("headers") or {})
        }

    def send(self, celery: Celery) -> None:
        options = {"root_id": self.root_id} if self.root_id else {}
        if len(self.signatures) == 1:
            self.signatures[0].apply_async(**options)
        else:
            chain(*self.signatures).apply_async(**options)


def run_steps(run: PipelineRun) -> tuple[list[RunStep], dict[str, TaskExecution], dict[str, str]]:
    """The run's steps, their executions by task id, and each step's state."""
    steps = list(db.session.scalars(select(RunStep).where(RunStep.run_id == run.id)))
    executions = {
        e.task_id: e
        for e in db.session.scalars(
            select(TaskExecution).where(TaskExecution.task_id.in_([s.task_id for s in steps]))
        )
    }
    states = step_states([_state(step, executions.get(step.task_id)) for step in steps])
    return steps, executions, states


def _state(step: RunStep, execution: TaskExecution | None) -> StepState:
    return StepState(
        task_id=step.task_id,
        task_name=step.task_name,
        after=step.after_task_id,
        replaces=step.replaces_task_id,
        status=execution.status.value if execution is not None else None,
    )


def resume_plan(run: PipelineRun, celery: Celery) -> Plan:
    """The chain that resumes ``run`` from its failed step; Conflict when it cannot."""
    if run.status != RunStatus.FAILURE:
        raise Conflict(
            _("Only a failed run can be resumed; this one is %(status)s.", status=run.status.value)
        )
    steps, executions, states = run_steps(run)
    failed_id = run.failed_step_task_id
    if states.get(failed_id or "") != "failure":
        failed_id = next((s.task_id for s in steps if states[s.task_id] == "failure"), None)
    failed = executions.get(failed_id) if failed_id else None
    if failed is None:
        raise Conflict(_("The failed step of this run is not recorded; it cannot be resumed."))
    _check_replayable(failed.task_name, failed.args, failed.kwargs, failed.replayable)
    plan = Plan(root_id=run.root_task_id)
    plan.signatures.append(
        _signature(
            celery, failed.task_name, failed.args, failed.kwargs, True, failed.task_id, failed.queue
        )
    )
    following = {s.after_task_id: s for s in steps if states.get(s.task_id) == NOT_RUN}
    current = failed.task_id
    while current in following:
        step = following.pop(current)
        _check_replayable(step.task_name, step.planned_args, step.planned_kwargs, step.replayable)
        plan.signatures.append(
            _signature(
                celery,
                step.task_name,
                step.planned_args,
                step.planned_kwargs,
                bool(step.immutable),
                step.task_id,
            )
        )
        current = step.task_id
    return plan


def again_plan(run: PipelineRun, celery: Celery) -> Plan:
    """The root sent anew with its recorded arguments and the chain it announced (a new run)."""
    steps, executions, _states = run_steps(run)
    root = executions.get(run.root_task_id)
    if root is None:
        raise Conflict(_("The first step of this run is not recorded; it cannot be sent again."))
    _check_replayable(root.task_name, root.args, root.kwargs, root.replayable)
    plan = Plan()
    headers = {"ewas_run_kind": "manual"}
    plan.signatures.append(
        _signature(celery, root.task_name, root.args, root.kwargs, True, None, root.queue, headers)
    )
    following = {
        s.after_task_id: s for s in steps if s.origin == StepOrigin.CHAIN and not s.replaces_task_id
    }
    current = root.task_id
    while current in following:
        step = following.pop(current)
        _check_replayable(step.task_name, step.planned_args, step.planned_kwargs, step.replayable)
        plan.signatures.append(
            _signature(
                celery,
                step.task_name,
                step.planned_args,
                step.planned_kwargs,
                bool(step.immutable),
                None,
                headers=headers,
            )
        )
        current = step.task_id
    return plan


def _check_replayable(name: str | None, args: Any, kwargs: Any, replayable: bool | None) -> None:
    if not name or args is None or kwargs is None:
        raise Conflict(
            _(
                "The arguments of step %(name)s are not recorded; it cannot be re-run exactly.",
                name=name or "?",
            )
        )
    if replayable is False:
        raise Conflict(
            _(
                "The arguments of step %(name)s were redacted or cut when stored, so it cannot be "
                "re-run exactly; send the job again from its schedule or source.",
                name=name,
            )
        )


def _signature(
    celery: Celery,
    name: str,
    args: Any,
    kwargs: Any,
    immutable: bool,
    replaces: str | None,
    queue: str | None = None,
    headers: dict[str, Any] | None = None,
) -> Any:
    options: dict[str, Any] = {"task_id": str(uuid.uuid4())}
    sent_headers = dict(headers or {})
    if replaces:
        sent_headers[RETRY_OF] = replaces
    if sent_headers:
        options["headers"] = sent_headers
    if queue:
        options["queue"] = queue
    return celery.signature(
        name, args=list(args or ()), kwargs=dict(kwargs or {}), immutable=immutable, **options
    )
