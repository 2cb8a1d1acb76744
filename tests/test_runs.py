"""Pipeline runs through real workers, a real recorder and the local IDMC server: a scheduled
job's outcome is the outcome of everything it started, and a failed run is fixed in one click."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from celery import chain
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, AuditEntry, PipelineRun, Role, ScheduledTask, TaskExecution
from app.scheduler import service
from app.services import runs
from app.services.schedule_history import schedule_stats
from app.services.schedule_listing import last_runs
from tests.idmc_server import IDU_RECORDS
from tests.support import bearer, wait_for

IDU = "/idus/last-180-days/"
PIPELINE = "idmc-daily-pipeline"
STEPS = [
    "data_pipeline.tasks.run_full_pipeline",
    "data_pipeline.tasks.retrieve_source",
    "data_pipeline.tasks.process_raw",
    "data_pipeline.tasks.aggregate_country_month",
    "location.tasks.match_locations",
]


@pytest.fixture
def engine(app: Flask, idmc_server, start_worker, start_recorder) -> dict:
    app.config["IDMC_API_URL"] = idmc_server.url
    return {
        "worker": start_worker(concurrency=2, IDMC_API_URL=idmc_server.url),
        "recorder": start_recorder(),
    }


def pipeline_schedule(runner) -> ScheduledTask:
    """The predefined IDMC schedule, with retries cut short so a failure is final in seconds."""
    assert runner.invoke(args=["setup-scheduled-tasks"]).exit_code == 0
    schedule = service.get_schedule(PIPELINE)
    service.update_schedule(schedule, max_retries=1, retry_backoff_seconds=0.2)
    db.session.commit()
    return schedule


def run_now(runner) -> str:
    sent = runner.invoke(args=["schedules", "run", PIPELINE])
    assert sent.exit_code == 0, sent.output
    return sent.output.split()[-1].rstrip(".")


def wait_run(root_id: str, *statuses: str, finished: bool = True, timeout: float = 120):
    def reached() -> PipelineRun | None:
        db.session.rollback()
        run = db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == root_id))
        if run is None or run.status.value not in statuses:
            return None
        return run if run.is_finished or not finished else None

    try:
        return wait_for(reached, timeout=timeout, interval=0.3)
    except AssertionError:
        db.session.rollback()
        rows = db.session.scalars(select(TaskExecution).where(TaskExecution.root_id == root_id))
        seen = [(r.task_name, r.status.value, r.retry_count, r.error_message) for r in rows]
        run = db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == root_id))
        found = (run.status, run.finished_at, states(run)) if run else None
        raise AssertionError(
            f"run of {root_id} not {statuses}: {found}; executions {seen}"
        ) from None


def states(run: PipelineRun) -> list[tuple[str | None, str]]:
    return [(s.task_name, s.state) for s in runs.detail(run.id).steps]


def test_the_pipeline_with_the_source_answering_is_one_successful_run(
    app: Flask, runner, idmc_server, engine
) -> None:
    idmc_server.serve(IDU, (200, IDU_RECORDS))
    schedule = pipeline_schedule(runner)
    root_id = run_now(runner)
    run = wait_run(root_id, "success")
    assert states(run) == [(name, "success") for name in STEPS]
    assert (run.steps_total, run.steps_succeeded, run.steps_failed) == (5, 5, 0)
    assert run.schedule_id == schedule.id and run.run_kind == "manual"
    assert last_runs([schedule.id])[schedule.id].outcome == "success"
    stats = schedule_stats(schedule.id)
    assert (stats.successes, stats.failures, stats.success_rate) == (1, 0, 1.0)


def test_an_unreachable_source_fails_the_run_and_resume_turns_it_green(
    app: Flask, client: FlaskClient, runner, idmc_server, engine, token_for
) -> None:
    idmc_server.serve(IDU, (503, {"detail": "down for maintenance"}))
    schedule = pipeline_schedule(runner)
    root_id = run_now(runner)
    run = wait_run(root_id, "failure")

    assert states(run) == [
        (STEPS[0], "success"),
        (STEPS[1], "failure"),
        (STEPS[2], "not_run"),
        (STEPS[3], "not_run"),
        (STEPS[4], "not_run"),
    ]
    assert run.failed_step_name == STEPS[1] and "HTTP 503" in run.error_message
    assert (run.steps_failed, run.steps_not_run) == (1, 3)
    last = last_runs([schedule.id])[schedule.id]
    assert last.outcome == "failure" and last.failed_step == STEPS[1]
    stats = schedule_stats(schedule.id)
    assert (stats.successes, stats.failures) == (0, 1)
    assert "HTTP 503" in stats.top_errors()[0][0]
    api = client.get(
        f"/tasks/api/scheduled/{schedule.id}/",
        headers=bearer(token_for(Role.VIEWER)),
    ).get_json()
    assert api["last_run"]["outcome"] == "failure" and api["statistics"]["failures"] == 1
    critical = db.session.scalars(select(Alert).where(Alert.severity == "critical")).all()
    assert len(critical) == 1 and STEPS[1] in critical[0].title
    failed_step = run.failed_step_task_id

    idmc_server.serve(IDU, (200, IDU_RECORDS))
    answer = client.post(
        f"/tasks/api/runs/{run.id}/resume/",
        headers=bearer(token_for(Role.OPERATOR)),
    )
    assert answer.status_code == 202, answer.get_json()
    new_ids = answer.get_json()["task_ids"]
    assert len(new_ids) == 4

    run = wait_run(root_id, "success")
    assert run.steps_total == 5 and run.steps_succeeded == 5
    detail = runs.detail(run.id)
    replaced = [s for s in detail.steps if s.state == "replaced"]
    assert len(replaced) == 4 and replaced[0].step.task_id == failed_step
    resumed = {s.step.task_id: s for s in detail.steps if s.step.origin == "resume"}
    assert set(resumed) == set(new_ids) and all(s.state == "success" for s in resumed.values())
    first = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == new_ids[0]))
    assert first.retry_of == failed_step and first.root_id == root_id
    assert last_runs([schedule.id])[schedule.id].outcome == "success"
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "run.resume")
        )
        == 1
    )


def test_invalid_data_fails_the_run_at_processing(app: Flask, runner, idmc_server, engine) -> None:
    idmc_server.serve(IDU, (200, {"detail": "no records today"}))
    pipeline_schedule(runner)
    run = wait_run(run_now(runner), "failure")
    assert [state for _name, state in states(run)] == [
        "success", "success", "failure", "not_run", "not_run",
    ]  # fmt: skip
    assert run.failed_step_name == STEPS[2] and "DataValidationError" in run.error_message


def test_a_revoked_step_makes_the_run_revoked(app: Flask, engine) -> None:
    celery = app.extensions["celery"]
    first = celery.signature("tests.sleep", args=(30,))
    sent = chain(first, celery.signature("tests.add", args=(1, 2), immutable=True)).apply_async()
    root_id = sent.parent.id
    wait_run(root_id, "running", finished=False)

    def started() -> bool:
        db.session.rollback()
        row = db.session.scalar(select(TaskExecution).where(TaskExecution.task_id == root_id))
        return row is not None and row.status.value == "started"

    wait_for(started, timeout=60)
    celery.control.revoke(root_id, terminate=True)
    run = wait_run(root_id, "revoked")
    assert [state for _name, state in states(run)] == ["revoked", "not_run"]


@pytest.mark.parametrize("role", [Role.VIEWER, None])
def test_resume_is_refused_without_an_operator(
    app: Flask, client: FlaskClient, role, token_for, redis_client
) -> None:
    headers = bearer(token_for(role)) if role else {}
    answer = client.post("/tasks/api/runs/1/resume/", headers=headers)
    assert answer.status_code in (401, 403)
    assert redis_client.llen("default") == 0


def test_resume_of_an_unknown_or_unfailed_run_is_refused(
    app: Flask, client: FlaskClient, token_for: Callable[[Role], str], redis_client
) -> None:
    from tests.test_runs_fold import apply, chain_story

    headers = bearer(token_for(Role.OPERATOR))
    assert client.post("/tasks/api/runs/999999/resume/", headers=headers).status_code == 404
    ids, events = chain_story(1_700_000_000.0)
    apply(events)
    run = db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == ids[0]))
    answer = client.post(f"/tasks/api/runs/{run.id}/resume/", headers=headers)
    assert answer.status_code == 409
    assert "Only a failed run can be resumed" in answer.get_json()["error"]["message"]
    assert redis_client.dbsize() == 0 or not any(
        key.startswith(b"default") or key == b"celery" for key in redis_client.scan_iter()
    )
    refused = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "run.resume"))
    assert [entry.outcome for entry in refused] == ["conflict"]


def test_a_retried_step_leaves_the_run_failed_until_it_is_resumed(
    app: Flask, client: FlaskClient, runner, idmc_server, engine, token_for
) -> None:
    """Retrying the failed execution alone does not go on with its chain: the run says where it
    stopped, and a resume sends the steps not run, the first with the retried step's result."""
    idmc_server.serve(IDU, (503, {"detail": "down"}))
    pipeline_schedule(runner)
    root_id = run_now(runner)
    run = wait_run(root_id, "failure")
    idmc_server.serve(IDU, (200, IDU_RECORDS))
    operator = bearer(token_for(Role.OPERATOR))
    retried = client.post(
        f"/tasks/api/executions/{run.failed_step_task_id}/retry/", headers=operator
    )
    assert retried.status_code == 202

    def stopped_at_processing() -> PipelineRun | None:
        found = wait_run(root_id, "failure")
        return found if found.failed_step_name == STEPS[2] else None

    run = wait_for(stopped_at_processing, timeout=60, interval=0.5)
    assert [state for _name, state in states(run)].count("not_run") == 3
    answer = client.post(f"/tasks/api/runs/{run.id}/resume/", headers=operator)
    assert answer.status_code == 202 and len(answer.get_json()["task_ids"]) == 3
    run = wait_run(root_id, "success")
    assert run.steps_succeeded == 5
