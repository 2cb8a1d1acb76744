"""Keep runs current as the recorder folds executions (same transaction, no scan of executions).

For each execution of a batch, the run it belongs to is found through the steps already known:
its own task id (a planned step, or a step seen before), the step it retries (``retry_of``: a
resume or a manual retry joins the run of what it replaces), or its root (Celery's ``root_id``:
chain steps and tasks sent by a task). An execution that belongs to no run starts one when it is
a scheduled send, a chain, or a task that sent others; a lone ad-hoc task is no run. Planned
steps come with the events: a chain's message lists its later steps (``planned`` on a publish
event) and a task's final event lists the tasks it sent (``children``).

Then every touched run is summarized from its steps joined to their executions (a run's own
rows, by unique task id) with the pure rules of ``app.runs.status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, select, update

from app.database import dialect_insert
from app.extensions import db
from app.models import TaskExecution
from app.models.run import PipelineRun, RunStatus, RunStep, StepOrigin
from app.models.types import utcnow
from app.runs.status import StepState, Summary, summarize
from app.tracking import events as ev

CHUNK = 500
RUN_ROOT_KINDS = frozenset({"scheduled", "manual", "catchup", "backfill"})


@dataclass
class RunChanges:
    """What a batch did to runs: which executions belong to one, and which runs just failed."""

    members: set[str] = field(default_factory=set)
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _NewStep:
    task_id: str
    origin: StepOrigin
    task_name: str | None = None
    after: str | None = None
    replaces: str | None = None
    planned_args: Any = None
    planned_kwargs: Any = None
    immutable: bool | None = None
    replayable: bool = True


def record_runs(rows: list[dict[str, Any]], by_task: dict[str, list[dict]]) -> RunChanges:
    """Attach the batch's executions (``rows``: folded rows) to runs and summarize those runs."""
    plans = _plans(by_task)
    referenced: set[str] = set()
    for row in rows:
        referenced.update(
            value
            for value in (row["task_id"], row.get("retry_of"), row.get("root_id"))
            if value is not None
        )
    for steps in plans.values():
        referenced.update(step.task_id for step in steps)
    known = _runs_of(referenced)

    joining: dict[str, tuple[Any, _NewStep | None]] = {}  # task id -> (run id or root, new step)
    waiting = sorted(rows, key=lambda r: r["task_id"])
    while waiting:
        # A retry whose original is in this same batch joins once the original has a run.
        later = []
        for row in waiting:
            found = _membership(row, known, plans)
            if found is not None:
                joining[row["task_id"]] = found
            elif row.get("retry_of") in joining:
                key = joining[row["retry_of"]][0]
                joining[row["task_id"]] = (
                    key,
                    _NewStep(
                        row["task_id"],
                        StepOrigin.RESUME,
                        row.get("task_name"),
                        row.get("parent_id"),
                        row["retry_of"],
                    ),
                )
            elif row.get("retry_of") is not None:
                later.append(row)
        if len(later) == len(waiting) or not any(r.get("retry_of") in joining for r in later):
            break
        waiting = later
    if not joining:
        return RunChanges()

    roots = {key for key, _step in joining.values() if isinstance(key, str)}
    run_ids = _ensure_runs(roots, rows)
    new_steps: dict[int, list[_NewStep]] = {}
    changes = RunChanges()
    for task_id, (key, step) in joining.items():
        run_id = run_ids[key] if isinstance(key, str) else key
        changes.members.add(task_id)
        if isinstance(key, str) and key not in known:
            new_steps.setdefault(run_id, []).append(_NewStep(key, StepOrigin.ROOT))
        if step is not None:
            new_steps.setdefault(run_id, []).append(step)
        new_steps.setdefault(run_id, []).extend(plans.get(task_id, ()))
    _insert_steps(new_steps)
    changes.failed = _summarize_runs(sorted(new_steps))
    return changes


def _plans(by_task: dict[str, list[dict]]) -> dict[str, list[_NewStep]]:
    """Steps announced by the batch's events: a chain's later steps, a task's children."""
    plans: dict[str, list[_NewStep]] = {}
    for task_id, task_events in by_task.items():
        for event in task_events:
            fields = event.get("fields") or {}
            previous = task_id
            for planned in fields.get("planned") or ():
                if not isinstance(planned, dict) or not planned.get("task_id"):
                    continue
                replaces = planned.get("retry_of")
                plans.setdefault(task_id, []).append(
                    _NewStep(
                        task_id=str(planned["task_id"])[:64],
                        origin=StepOrigin.RESUME if replaces else StepOrigin.CHAIN,
                        task_name=planned.get("task_name"),
                        after=previous,
                        replaces=replaces,
                        planned_args=planned.get("args"),
                        planned_kwargs=planned.get("kwargs"),
                        immutable=bool(planned.get("immutable")),
                        replayable=planned.get("replayable") is not False,
                    )
                )
                previous = str(planned["task_id"])[:64]
            if event.get("kind") in ev.FINAL_KINDS:
                for child in fields.get("children") or ():
                    if isinstance(child, dict) and child.get("task_id"):
                        plans.setdefault(task_id, []).append(
                            _NewStep(
                                task_id=str(child["task_id"])[:64],
                                origin=StepOrigin.SENT,
                                task_name=child.get("task_name"),
                                after=task_id,
                            )
                        )
    return plans


def _membership(
    row: dict[str, Any], known: dict[str, int], plans: dict[str, list[_NewStep]]
) -> tuple[Any, _NewStep | None] | None:
    """The run (an id, or the root task id of a run to create) and the row's step.

    A step already known is described again: what a later event tells (the step it replaces,
    the one it follows) fills what the first one did not, whatever their order.
    """
    task_id, root = row["task_id"], row.get("root_id")
    name, retry_of = row.get("task_name"), row.get("retry_of")
    if retry_of is not None and retry_of in known:
        step = _NewStep(task_id, StepOrigin.RESUME, name, row.get("parent_id"), retry_of)
        return known.get(task_id, known[retry_of]), step
    if root and root != task_id:
        step = _NewStep(task_id, StepOrigin.SENT, name, row.get("parent_id") or root)
        return known.get(task_id, known.get(root, root)), step
    if task_id in known:
        return known[task_id], None
    if (
        task_id in plans
        or row.get("schedule_id") is not None
        or row.get("run_kind") in (RUN_ROOT_KINDS)
    ):
        return task_id, None  # the root step is added with the run
    return None


def _runs_of(task_ids: set[str]) -> dict[str, int]:
    """Run id of each of ``task_ids`` that is a known step."""
    found: dict[str, int] = {}
    ids = sorted(task_ids)
    for start in range(0, len(ids), CHUNK):
        query = select(RunStep.task_id, RunStep.run_id).where(
            RunStep.task_id.in_(ids[start : start + CHUNK])
        )
        found.update((task_id, run_id) for task_id, run_id in db.session.execute(query))
    return found


def _ensure_runs(roots: set[str], rows: list[dict[str, Any]]) -> dict[str, int]:
    """Create the runs rooted at ``roots`` that do not exist yet; their ids by root."""
    if not roots:
        return {}
    created = {row["task_id"]: row.get("created_at") for row in rows}
    now = utcnow()
    values = [
        {
            "root_task_id": root,
            "status": RunStatus.RUNNING.value,
            "created_at": created.get(root) or now,
            "updated_at": now,
            "steps_total": 0,
            "steps_succeeded": 0,
            "steps_failed": 0,
            "steps_running": 0,
            "steps_not_run": 0,
        }
        for root in sorted(roots)
    ]
    db.session.execute(dialect_insert(PipelineRun.__table__).on_conflict_do_nothing(), values)
    ids: dict[str, int] = {}
    ordered = sorted(roots)
    for start in range(0, len(ordered), CHUNK):
        query = select(PipelineRun.root_task_id, PipelineRun.id).where(
            PipelineRun.root_task_id.in_(ordered[start : start + CHUNK])
        )
        ids.update((root, run_id) for root, run_id in db.session.execute(query))
    return ids


# When several events tell of one step, the most specific origin wins, whatever their order.
ORIGIN_RANK = {StepOrigin.SENT: 0, StepOrigin.CHAIN: 1, StepOrigin.RESUME: 2, StepOrigin.ROOT: 3}
FILLED = ("task_name", "after", "replaces", "planned_args", "planned_kwargs", "immutable")


def _merge(known: _NewStep, other: _NewStep) -> None:
    if ORIGIN_RANK[other.origin] > ORIGIN_RANK[known.origin]:
        known.origin = other.origin
    for name in FILLED:
        if getattr(known, name) is None:
            setattr(known, name, getattr(other, name))
    known.replayable = known.replayable and other.replayable


def _insert_steps(new_steps: dict[int, list[_NewStep]]) -> None:
    """Add steps (a step known already keeps its run; what it lacked is filled in)."""
    merged: dict[str, tuple[int, _NewStep]] = {}
    for run_id in sorted(new_steps):
        for step in new_steps[run_id]:
            if step.task_id in merged:
                _merge(merged[step.task_id][1], step)
            else:
                merged[step.task_id] = (run_id, _NewStep(**vars(step)))
    if not merged:
        return
    now = utcnow()
    values = [
        {
            "run_id": run_id,
            "task_id": task_id,
            "task_name": step.task_name,
            "origin": step.origin.value,
            "after_task_id": step.after,
            "replaces_task_id": step.replaces,
            "planned_args": step.planned_args,
            "planned_kwargs": step.planned_kwargs,
            "immutable": step.immutable,
            "replayable": step.replayable,
            "created_at": now,
        }
        for task_id, (run_id, step) in sorted(merged.items())
    ]
    table = RunStep.__table__
    statement = dialect_insert(table)
    excluded = statement.excluded
    fill: dict[str, ColumnElement[Any]] = {
        name: func.coalesce(table.c[name], excluded[name])
        for name in (
            "task_name",
            "after_task_id",
            "replaces_task_id",
            "planned_args",
            "planned_kwargs",
            "immutable",
        )
    }
    fill["origin"] = case(
        (table.c.origin == StepOrigin.SENT.value, excluded.origin),
        (
            (table.c.origin == StepOrigin.CHAIN.value)
            & (
                (excluded.origin == StepOrigin.RESUME.value)
                | (excluded.origin == StepOrigin.ROOT.value)
            ),
            excluded.origin,
        ),
        else_=table.c.origin,
    )
    fill["replayable"] = table.c.replayable & excluded.replayable
    db.session.execute(
        statement.on_conflict_do_update(index_elements=["task_id"], set_=fill), values
    )


_STEP_COLUMNS = (
    RunStep.run_id,
    RunStep.task_id,
    RunStep.task_name.label("planned_name"),
    RunStep.after_task_id,
    RunStep.replaces_task_id,
    TaskExecution.status,
    TaskExecution.task_name,
    TaskExecution.started_at,
    TaskExecution.completed_at,
    TaskExecution.created_at,
    TaskExecution.error_message,
    TaskExecution.schedule_id,
    TaskExecution.schedule_occurrence,
    TaskExecution.run_kind,
    TaskExecution.task_type_id,
    TaskExecution.is_dead_letter,
)


def _summarize_runs(run_ids: list[int]) -> list[dict[str, Any]]:
    """Recompute each run from its steps; return the runs that have just failed."""
    failed: list[dict[str, Any]] = []
    for start in range(0, len(run_ids), CHUNK):
        chunk = run_ids[start : start + CHUNK]
        runs = {
            run.id: run
            for run in db.session.execute(
                select(
                    PipelineRun.id,
                    PipelineRun.root_task_id,
                    PipelineRun.status,
                    PipelineRun.created_at,
                ).where(PipelineRun.id.in_(chunk))
            )
        }
        steps: dict[int, list[Any]] = {run_id: [] for run_id in chunk}
        query = (
            select(*_STEP_COLUMNS)
            .outerjoin(TaskExecution, TaskExecution.task_id == RunStep.task_id)
            .where(RunStep.run_id.in_(chunk))
        )
        for step in db.session.execute(query):
            steps[step.run_id].append(step)
        updates = []
        for run_id in chunk:
            run = runs[run_id]
            values, summary = _run_values(run, steps[run_id])
            updates.append(values)
            failed_step = summary.failed_step  # set whenever the status is failure
            if (
                summary.status == RunStatus.FAILURE
                and run.status != RunStatus.FAILURE
                and failed_step is not None
            ):
                failing = next(s for s in steps[run_id] if s.task_id == failed_step.task_id)
                failed.append(
                    {
                        **values,
                        "root_task_id": run.root_task_id,
                        "failed_task_type_id": failing.task_type_id,
                        "dead_letter": bool(failing.is_dead_letter),
                    }
                )
        table = PipelineRun.__table__
        db.session.execute(
            update(table).where(table.c.id == bindparam("run_pk")),
            [
                {"run_pk" if key == "id" else key: value for key, value in v.items()}
                for v in updates
            ],
        )
    return failed


def _run_values(run: Any, steps: list[Any]) -> tuple[dict[str, Any], Summary]:
    """The run row's new values from its steps."""
    summary = summarize(
        [
            StepState(
                task_id=step.task_id,
                task_name=step.task_name or step.planned_name,
                after=step.after_task_id,
                replaces=step.replaces_task_id,
                status=_status(step.status),
                started_at=step.started_at,
                completed_at=step.completed_at,
                error_message=step.error_message,
            )
            for step in steps
        ]
    )
    root = next((step for step in steps if step.task_id == run.root_task_id), None)
    failed = summary.failed_step
    created = [step.created_at for step in steps if step.created_at is not None]
    return {
        "id": run.id,
        "status": summary.status,
        "updated_at": utcnow(),
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "created_at": min(created) if created else run.created_at,
        "steps_total": summary.total,
        "steps_succeeded": summary.succeeded,
        "steps_failed": summary.failed,
        "steps_running": summary.running,
        "steps_not_run": summary.not_run,
        "failed_step_task_id": failed.task_id if failed else None,
        "failed_step_name": (failed.task_name or None) if failed else None,
        "error_message": failed.error_message if failed else None,
        "task_name": (root.task_name or root.planned_name) if root is not None else None,
        "schedule_id": root.schedule_id if root is not None else None,
        "schedule_occurrence": root.schedule_occurrence if root is not None else None,
        "run_kind": root.run_kind if root is not None else None,
    }, summary


def _status(value: Any) -> str | None:
    if value is None:
        return None
    return value.value if hasattr(value, "value") else str(value)
