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
    """The chain that resumes ``run`` where it stopped; Conflict when it cannot.

    From a failed step: that step again with its exact recorded arguments. From a step that was
    not run (its predecessor succeeded through an operator's retry of that one step): that step
    with the arguments its chain carried, and the predecessor's result first when the step takes
    it. Then every step not run after it, as one chain.
    """
    if run.status != RunStatus.FAILURE:
        raise Conflict(
            _("Only a failed run can be resumed; this one is %(status)s.", status=run.status.value)
        )
    steps, executions, states = run_steps(run)
    by_id = {s.task_id: s for s in steps}
    start = run.failed_step_task_id
    if states.get(start or "") not in ("failure", NOT_RUN):
        start = next((s.task_id for s in steps if states[s.task_id] == "failure"), None)
    if start is None:
        raise Conflict(_("The failed step of this run is not recorded; it cannot be resumed."))
    plan = Plan(root_id=run.root_task_id)
    if states[start] == "failure":
        failed = executions.get(start)
        if failed is None:
            raise Conflict(_("The failed step of this run is not recorded; it cannot be resumed."))
        name = _check_replayable(failed.task_name, failed.args, failed.kwargs, failed.replayable)
        plan.signatures.append(
            _signature(celery, name, failed.args, failed.kwargs, True, start, failed.queue)
        )
    else:
        step = by_id[start]
        name = _check_replayable(
            step.task_name, step.planned_args, step.planned_kwargs, step.replayable
        )
        args = list(step.planned_args or ())
        if not step.immutable:
            args = [_previous_result(step, by_id, executions), *args]
        plan.signatures.append(_signature(celery, name, args, step.planned_kwargs, True, start))
    following = {s.after_task_id: s for s in steps if states.get(s.task_id) == NOT_RUN}
    current = start
    while current in following:
        step = following.pop(current)
        if step.task_id == start:
            break
        name = _check_replayable(
            step.task_name, step.planned_args, step.planned_kwargs, step.replayable
        )
        plan.signatures.append(
            _signature(
                celery,
                name,
                step.planned_args,
                step.planned_kwargs,
                bool(step.immutable),
                step.task_id,
            )
        )
        current = step.task_id
    return plan


def _previous_result(
    step: RunStep, by_id: dict[str, RunStep], executions: dict[str, TaskExecution]
) -> Any:
    """The result the step before ``step`` handed on: that of its last successful replacement."""
    replaced_by = {s.replaces_task_id: s.task_id for s in by_id.values() if s.replaces_task_id}
    current, seen = step.after_task_id, set()
    while current in replaced_by and current not in seen:
        seen.add(current)
        current = replaced_by[current]
    previous = executions.get(current or "")
    result = previous.result if previous is not None else None
    if previous is None or (isinstance(result, dict) and result.get("_truncated")):
        raise Conflict(
            _(
                "Step %(name)s takes the result of the step before it, which is not recorded "
                "in full; it cannot be re-run exactly.",
                name=step.task_name or "?",
            )
        )
    return result


def again_plan(run: PipelineRun, celery: Celery) -> Plan:
    """The root sent anew with its recorded arguments and the chain it announced (a new run)."""
    steps, executions, _states = run_steps(run)
    root = executions.get(run.root_task_id)
    if root is None:
        raise Conflict(_("The first step of this run is not recorded; it cannot be sent again."))
    name = _check_replayable(root.task_name, root.args, root.kwargs, root.replayable)
    plan = Plan()
    headers = {"ewas_run_kind": "manual"}
    plan.signatures.append(
        _signature(celery, name, root.args, root.kwargs, True, None, root.queue, headers)
    )
    following = {
        s.after_task_id: s for s in steps if s.origin == StepOrigin.CHAIN and not s.replaces_task_id
    }
    current = root.task_id
    while current in following:
        step = following.pop(current)
        name = _check_replayable(
            step.task_name, step.planned_args, step.planned_kwargs, step.replayable
        )
        plan.signatures.append(
            _signature(
                celery,
                name,
                step.planned_args,
                step.planned_kwargs,
                bool(step.immutable),
                None,
                headers=headers,
            )
        )
        current = step.task_id
    return plan


def _check_replayable(name: str | None, args: Any, kwargs: Any, replayable: bool | None) -> str:
    """The step's task name, once it is known that the step can be sent again as recorded."""
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
    return name


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
