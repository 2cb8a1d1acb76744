"""Runs in ``bench/scale.py``: chains of 4 executions made into runs (250,000 runs over 1,000,000
executions), and the run pages and API calls to time against their 50 ms target."""

from __future__ import annotations

from sqlalchemy import select, text

CHAIN = 4


def prepare_runs() -> int:
    """Group the executions by ``CHAIN`` consecutive ids into runs with their steps, in SQL (the
    recorder writes the same rows); a chain whose first step failed is a failed run."""
    from app.extensions import db

    db.session.execute(
        text(
            "insert into pipeline_runs (root_task_id, task_name, schedule_id, schedule_occurrence,"
            " run_kind, status, created_at, updated_at, started_at, finished_at, steps_total,"
            " steps_succeeded, steps_failed, steps_running, steps_not_run, failed_step_task_id,"
            " failed_step_name, error_message)"
            " select r.task_id, r.task_name, r.schedule_id, r.schedule_occurrence, r.run_kind,"
            "  case when r.status = 'failure' then 'failure' else 'success' end,"
            "  r.created_at, r.updated_at, r.started_at, r.completed_at + interval '3 seconds',"
            "  :chain, case when r.status = 'failure' then 0 else :chain end,"
            "  case when r.status = 'failure' then 1 else 0 end, 0,"
            "  case when r.status = 'failure' then :chain - 1 else 0 end,"
            "  case when r.status = 'failure' then r.task_id end,"
            "  case when r.status = 'failure' then r.task_name end, r.error_message"
            " from task_executions r where (r.id - 1) % :chain = 0"
        ),
        {"chain": CHAIN},
    )
    db.session.execute(
        text(
            "insert into pipeline_run_steps (run_id, task_id, task_name, origin, after_task_id,"
            " replayable, created_at)"
            " select p.id, e.task_id, e.task_name,"
            "  case when (e.id - 1) % :chain = 0 then 'root' else 'chain' end,"
            "  prev.task_id, true, e.created_at"
            " from task_executions e"
            " join task_executions root on root.id = ((e.id - 1) / :chain) * :chain + 1"
            " join pipeline_runs p on p.root_task_id = root.task_id"
            " left join task_executions prev on prev.id = e.id - 1 and (e.id - 1) % :chain <> 0"
        ),
        {"chain": CHAIN},
    )
    db.session.execute(text("analyze pipeline_runs"))
    db.session.execute(text("analyze pipeline_run_steps"))
    db.session.commit()
    from sqlalchemy import func

    from app.models import PipelineRun

    return db.session.scalar(select(func.count()).select_from(PipelineRun))


def run_calls(busy: int) -> dict[str, tuple[str, bool]]:
    """The run pages, the dashboard's runs panel and the runs API, by label."""
    from app.extensions import db
    from app.models import PipelineRun

    failed = db.session.scalar(
        select(PipelineRun.id).where(PipelineRun.status == "failure").limit(1)
    )
    return {
        "runs list": ("/tasks/runs/", False),
        "runs list, failures of one schedule": (
            f"/tasks/runs/?schedule={busy}&status=failure",
            False,
        ),
        "runs list: table fragment": ("/tasks/runs/?status=failure", True),
        "run page (a failed run)": (f"/tasks/runs/{failed}/", False),
        "dashboard: scheduled runs panel": ("/tasks/dashboard/runs", True),
        "API: runs list": ("/tasks/api/runs/?page_size=50", False),
        "API: runs of one schedule, failed": (
            f"/tasks/api/runs/?schedule={busy}&status=failure",
            False,
        ),
        "API: one run with its steps": (f"/tasks/api/runs/{failed}/", False),
    }
