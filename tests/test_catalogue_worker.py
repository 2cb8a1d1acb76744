"""The catalogue through real workers and a real recorder: retries, no retries, and the IDMC
pipeline end to end from the predefined schedule."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import DataPoint, RawPayload, TaskExecution
from app.pipeline import sources
from tests.idmc_server import IDU_RECORDS
from tests.support import wait_for
from tests.test_tracking import send, wait_status

IDU = "/idus/last-180-days/"


@pytest.fixture
def engine(app: Flask, idmc_server, start_worker, start_recorder) -> dict:
    app.config["IDMC_API_URL"] = idmc_server.url
    return {
        "worker": start_worker(concurrency=2, IDMC_API_URL=idmc_server.url),
        "recorder": start_recorder(),
    }


def _idmc_ids() -> tuple[int, int]:
    source = sources.ensure_source("idmc")
    db.session.commit()
    return source.id, sources.active_variables(source)[0].id


def test_retrieval_retries_a_503_then_stores_the_payload(app: Flask, idmc_server, engine) -> None:
    source_id, variable_id = _idmc_ids()
    idmc_server.serve(IDU, (503, {"detail": "busy"}), (200, IDU_RECORDS))
    task_id = send(app, "data_pipeline.tasks.retrieve_source", source_id, variable_id)
    row = wait_status(task_id, "success", timeout=90)
    assert row.retry_count == 1 and idmc_server.count(IDU) == 2
    assert row.queue == "data_retrieval" and row.task_type.name == "retrieval"
    assert (row.source_id, row.variable_id) == (source_id, variable_id)
    assert "TransientNetworkError" in row.attempts[0]["error_message"]
    raw = db.session.get(RawPayload, row.result["raw_id"])
    assert raw.checksum == row.result["checksum"] and raw.task_id == task_id


def test_retrieval_does_not_retry_a_404(app: Flask, idmc_server, engine) -> None:
    source_id, variable_id = _idmc_ids()
    idmc_server.serve(IDU, (404, {"detail": "Not found."}))
    task_id = send(app, "data_pipeline.tasks.retrieve_source", source_id, variable_id)
    row = wait_status(task_id, "failure", timeout=60)
    assert row.retry_count == 0 and idmc_server.count(IDU) == 1
    assert "PermanentRetrievalError" in row.error_message
    assert f"HTTP 404 from GET {idmc_server.url}{IDU}" in row.error_message
    assert any(f"GET {idmc_server.url}{IDU} -> HTTP 404 in" in line["message"] for line in row.logs)


def test_processing_invalid_data_is_not_retried(app: Flask, idmc_server, engine) -> None:
    source_id, variable_id = _idmc_ids()
    raw = RawPayload(source_id=source_id, variable_id=variable_id, url="x", status_code=200,
                     body="<html>", size_bytes=6, checksum="0" * 64)  # fmt: skip
    db.session.add(raw)
    db.session.commit()
    task_id = send(app, "data_pipeline.tasks.process_raw", raw.id)
    row = wait_status(task_id, "failure", timeout=60)
    assert row.retry_count == 0 and "DataValidationError" in row.error_message
    assert row.queue == "data_processing" and len(row.attempts) == 1


def test_idmc_pipeline_from_the_predefined_schedule(
    app: Flask, runner, idmc_server, engine
) -> None:
    idmc_server.serve(IDU, (200, IDU_RECORDS))
    setup = runner.invoke(args=["setup-scheduled-tasks"])
    assert setup.exit_code == 0 and "Created idmc-daily-pipeline" in setup.output
    again = runner.invoke(args=["setup-scheduled-tasks"])
    assert "nothing changed" in again.output
    sent = runner.invoke(args=["schedules", "run", "idmc-daily-pipeline"])
    assert sent.exit_code == 0, sent.output
    root_id = sent.output.split()[-1].rstrip(".")
    root = wait_status(root_id, "success", timeout=90)
    assert root.result["chains"][0]["variable"] == "idu_new_displacements"

    names = [
        "data_pipeline.tasks.retrieve_source",
        "data_pipeline.tasks.process_raw",
        "data_pipeline.tasks.aggregate_country_month",
        "location.tasks.match_locations",
    ]

    def steps() -> list[TaskExecution] | None:
        db.session.rollback()
        rows = {
            r.task_name: r
            for r in db.session.scalars(
                select(TaskExecution).where(TaskExecution.root_id == root_id)
            )
        }
        done = [rows.get(n) for n in names]
        return done if all(r is not None and r.status.value == "success" for r in done) else None

    chain = wait_for(steps, timeout=120, interval=0.5)
    parents = [root_id] + [r.task_id for r in chain[:-1]]
    assert [r.parent_id for r in chain] == parents
    assert [r.queue for r in chain] == [
        "data_retrieval", "data_processing", "aggregation", "location_processing",
    ]  # fmt: skip
    assert [r.task_type.name for r in chain] == [
        "retrieval", "processing", "aggregation", "processing",
    ]  # fmt: skip
    assert chain[1].result["inserted"] == 5 and chain[1].variable_id is not None
    assert chain[3].result["unmatched"] == [{"name": "Atlantis", "points": 1}]
    assert root.schedule_id is not None
    assert db.session.scalar(select(func.count()).select_from(DataPoint)) == 5
    source = sources.ensure_source("idmc")
    assert source.base_url == idmc_server.url
