"""The pure rules that turn a run's steps into its status, counts and first failure.

A step is an execution of the run, or a planned step that has none yet. A step that an operator
sent again (resume, retry) is replaced by the new one and no longer counts. A planned step with
no execution is ``not run`` when the step it follows ended without success (its chain stopped
there) or was replaced (an operator's retry of one step sends that step alone: the chain does not
go on from it; a resume replaces the steps after it too), and ``waiting`` otherwise (it is still
to be sent, so the run is still running).

- ``failure`` as soon as any counted step failed for good (its run is finished once nothing is
  still running);
- else ``revoked`` when any counted step was cancelled;
- else ``running`` while any step is pending, started, retrying or waiting to be sent;
- else ``failure`` when a step was not run (the run is incomplete: the first step not run is
  where it stopped, and a resume goes on from there);
- else ``success``: every step, planned ones included, succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

RUNNING_STATES = frozenset({"pending", "started", "retry", "waiting"})
NOT_RUN = "not_run"
WAITING = "waiting"


@dataclass(frozen=True)
class StepState:
    """One step as the status rules see it."""

    task_id: str
    task_name: str | None = None
    after: str | None = None
    replaces: str | None = None
    status: str | None = None  # the execution's status; None when it was never recorded
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Summary:
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    total: int
    succeeded: int
    failed: int
    running: int
    not_run: int
    failed_step: StepState | None
    states: dict[str, str]  # task id -> success, failure, running states, not_run, replaced


def step_states(steps: list[StepState]) -> dict[str, str]:
    """Each step's state: its execution's status, ``waiting``, ``not_run`` or ``replaced``."""
    by_id = {step.task_id: step for step in steps}
    replaced_by = {step.replaces: step.task_id for step in steps if step.replaces in by_id}
    states: dict[str, str] = {}

    def state(task_id: str, seen: frozenset[str] = frozenset()) -> str:
        if task_id in states:
            return states[task_id]
        step = by_id[task_id]
        if task_id in replaced_by:
            found = "replaced"
        elif step.status is not None:
            found = step.status
        else:
            found = WAITING
            after = _predecessor(step, by_id)
            if after is not None and after not in seen:
                previous = state(after, seen | {task_id})
                if previous in ("failure", "revoked", NOT_RUN, "replaced"):
                    found = NOT_RUN
        states[task_id] = found
        return found

    for task_id in by_id:
        state(task_id)
    return states


def _predecessor(step: StepState, by_id: dict[str, StepState]) -> str | None:
    """The step this one follows; a replacement follows what the step it replaces followed."""
    after, seen = step.after, {step.task_id}
    current = step
    while after is None and current.replaces in by_id and current.replaces not in seen:
        seen.add(current.replaces)
        current = by_id[current.replaces]
        after = current.after
    return after if after in by_id else None


def summarize(steps: list[StepState]) -> Summary:
    """The run's status and counts from its steps (order-independent)."""
    states = step_states(steps)
    counted = [step for step in steps if states[step.task_id] != "replaced"]
    count = {name: 0 for name in ("success", "failure", "revoked", NOT_RUN)}
    running = 0
    for step in counted:
        found = states[step.task_id]
        if found in RUNNING_STATES:
            running += 1
        else:
            count[found] = count.get(found, 0) + 1
    failures = [step for step in counted if states[step.task_id] == "failure"]
    revoked = [step for step in counted if states[step.task_id] == "revoked"]
    by_id = {step.task_id: step for step in steps}
    stopped = [
        step
        for step in counted
        if states[step.task_id] == NOT_RUN
        and states.get(_predecessor(step, by_id) or "") != NOT_RUN
    ]
    if failures:
        status = "failure"
    elif revoked:
        status = "revoked"
    elif running:
        status = "running"
    elif stopped:
        status = "failure"
    else:
        status = "success"
    started = [step.started_at for step in steps if step.started_at is not None]
    completed = [step.completed_at for step in steps if step.completed_at is not None]
    finished_at = max(completed) if completed and not running and status != "running" else None
    started_at = min(started) if started else None
    if finished_at is not None and started_at is not None and finished_at < started_at:
        finished_at = started_at  # hosts' clocks may disagree
    first = min(failures or revoked or stopped, key=_ended, default=None)
    return Summary(
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        total=len(counted),
        succeeded=count["success"],
        failed=count["failure"],
        running=running,
        not_run=count[NOT_RUN],
        failed_step=first,
        states=states,
    )


def _ended(step: StepState) -> tuple[bool, datetime | str, str]:
    when = step.completed_at or step.started_at
    return (when is None, when or "", step.task_id)
