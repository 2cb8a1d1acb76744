"""The catalogue's services against a real database, Redis and a local IDMC-shaped server."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import date, timedelta
from uuid import uuid4

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.location.matching import match_name, normalize_name
from app.models import (
    Alert,
    CountryMonthTotal,
    DataPoint,
    RawPayload,
    Source,
    TaskExecution,
    TaskStatus,
)
from app.models.types import utcnow
from app.pipeline import aggregation, processing, retrieval, sources, validation
from app.pipeline.retrieval import PermanentRetrievalError
from app.tracking import DataValidationError, TransientNetworkError
from tests import factories
from tests.idmc_server import IDU_RECORDS

IDU = "/idus/last-180-days/"


@pytest.fixture
def idmc(app: Flask, idmc_server):
    """The IDMC source created on first use, pointed at the local server."""
    app.config["IDMC_API_URL"] = idmc_server.url
    source = sources.ensure_source("idmc")
    db.session.commit()
    return source, sources.active_variables(source)[0]


def test_idmc_source_created_by_many_at_once_exists_once(app: Flask) -> None:
    """The issue's race: pipelines sent together on a fresh database each created the source,
    and all but one failed on ``UNIQUE constraint failed: sources.name``."""
    workers = 8
    barrier = threading.Barrier(workers)
    found: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        with app.app_context():  # its own session and connection
            try:
                db.session.scalar(select(func.count()).select_from(Source))  # all see none
                barrier.wait(timeout=20)
                source = sources.ensure_source("idmc")
                db.session.commit()
                found.append(source.id)
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=create) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(found) == workers and len(set(found)) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Source)) == 1
    [source] = db.session.scalars(select(Source)).all()
    assert [v.code for v in sources.active_variables(source)] == ["idu_new_displacements"]


def test_idmc_source_defaults_to_the_public_api(app: Flask) -> None:
    source = sources.ensure_source("idmc")
    assert source.base_url == "https://helix-tools-api.idmcdb.org/external-api"
    assert [v.endpoint_path for v in sources.active_variables(source)] == [IDU]
    assert sources.ensure_source("idmc").id == source.id
    assert sources.ensure_source("unknown") is None


def test_retrieval_stores_the_payload_with_checksum_and_fetch_time(idmc, idmc_server) -> None:
    source, variable = idmc
    idmc_server.serve(IDU, (200, IDU_RECORDS))
    before = utcnow()
    payload = retrieval.retrieve(source.id, variable.id, task_id=str(uuid4()))
    db.session.commit()
    body = json.dumps(IDU_RECORDS).encode()
    assert payload.body.encode() == body and payload.size_bytes == len(body)
    assert payload.checksum == hashlib.sha256(body).hexdigest()
    assert payload.status_code == 200 and payload.url == idmc_server.url + IDU
    assert before <= payload.fetched_at <= utcnow()
    assert retrieval.summary(payload)["unchanged"] is False
    again = retrieval.retrieve(source.id, variable.id)
    assert retrieval.summary(again)["unchanged"] is True


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientNetworkError), (429, TransientNetworkError), (500, TransientNetworkError),
     (404, PermanentRetrievalError), (401, PermanentRetrievalError)],
)  # fmt: skip
def test_retrieval_sorts_http_errors_for_the_retry_policy(idmc, idmc_server, status, error):
    from app.tracking.policies import NETWORK_ERRORS

    source, variable = idmc
    idmc_server.serve(IDU, (status, {"detail": "no"}))
    with pytest.raises(error) as raised:
        retrieval.retrieve(source.id, variable.id)
    assert isinstance(raised.value, NETWORK_ERRORS) == (error is TransientNetworkError)
    assert db.session.scalar(select(func.count()).select_from(RawPayload)) == 0


def test_retrieval_of_an_unreachable_source_is_a_network_error_naming_the_host(
    app: Flask, idmc, caplog: pytest.LogCaptureFixture
) -> None:
    from app.tracking.policies import NETWORK_ERRORS
    from tests.support import REFUSED_PORT

    source, variable = idmc
    port = REFUSED_PORT
    source.base_url = f"http://127.0.0.1:{port}"
    app.config["IDMC_CLIENT_ID"] = "s3cret-id"
    with (
        caplog.at_level(logging.INFO, "app.pipeline.retrieval"),
        pytest.raises(TransientNetworkError) as raised,
    ):
        retrieval.retrieve(source.id, variable.id)
    message = str(raised.value)
    assert isinstance(raised.value, NETWORK_ERRORS)
    assert message.startswith("cannot reach 127.0.0.1: ConnectionRefusedError: ")
    assert f"(GET http://127.0.0.1:{port}{IDU}?client_id=***redacted***)" in message
    assert "s3cret" not in message and "s3cret" not in caplog.text
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert re.fullmatch(rf"GET http://127.0.0.1:{port}\S+ -> failed in \d+ ms: .+", record.message)


def test_retrieval_logs_each_request_with_status_and_time(
    idmc, idmc_server, caplog: pytest.LogCaptureFixture
) -> None:
    source, variable = idmc
    idmc_server.serve(IDU, (404, {"detail": "no"}), (200, IDU_RECORDS))
    with caplog.at_level(logging.INFO, "app.pipeline.retrieval"):
        with pytest.raises(PermanentRetrievalError, match=f"HTTP 404 from GET {idmc_server.url}"):
            retrieval.retrieve(source.id, variable.id)
        retrieval.retrieve(source.id, variable.id)
    failed, fetched = (record.message for record in caplog.records)
    assert re.fullmatch(rf"GET {idmc_server.url}{IDU} -> HTTP 404 in \d+ ms", failed)
    assert re.fullmatch(rf"GET {idmc_server.url}{IDU} -> HTTP 200, \d+ bytes in \d+ ms", fetched)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/p", "http://h/p"),
        ("http://h/p?client_id=abc&x=1", "http://h/p?client_id=***redacted***&x=1"),
        ("https://h/p?api_key=k&token=t&year=2024", "https://h/p?api_key=***redacted***&token=***redacted***&year=2024"),
        ("http://h/p?=&a", "http://h/p?=&a="),
    ],
)  # fmt: skip
def test_shown_url_masks_credentials(url: str, shown: str) -> None:
    assert retrieval.shown_url(url) == shown


def _stored(idmc, idmc_server, records) -> RawPayload:
    source, variable = idmc
    idmc_server.serve(IDU, (200, records))
    payload = retrieval.retrieve(source.id, variable.id)
    db.session.commit()
    return payload


def test_processing_normalizes_valid_records_and_lists_invalid_ones(idmc, idmc_server) -> None:
    bad = [
        {"id": 900, "country": "Chad", "iso3": "TC", "figure": 5, "date": "2024-01-01"},
        {"id": 901, "country": "Chad", "iso3": "TCD", "figure": -5, "displacement_date": "x"},
        "not a record",
    ]
    payload = _stored(idmc, idmc_server, IDU_RECORDS + bad)
    result = processing.process(payload.id)
    db.session.commit()
    assert (result["records"], result["inserted"], result["invalid_count"]) == (8, 5, 3)
    first, second, third = result["invalid"]
    assert first["id"] == 900 and "invalid ISO3 code 'TC'" in first["errors"]
    assert second["errors"] == ["missing or invalid date", "invalid value -5"]
    assert third == {"index": 7, "id": None, "errors": ["not an object"]}
    point = db.session.scalar(select(DataPoint).where(DataPoint.external_id == "104"))
    assert (point.location_name, point.iso3, point.value) == ("DR Congo", "COD", 4000.0)
    assert point.date == date(2024, 2, 14) and point.month == date(2024, 2, 1)
    assert point.source_id == payload.source_id and point.raw_id == payload.id
    again = processing.process(payload.id)
    assert (again["inserted"], again["updated"]) == (0, 5)


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b'{"detail": "x"}'])
def test_processing_refuses_a_payload_that_is_no_record_list(idmc, idmc_server, body) -> None:
    payload = _stored(idmc, idmc_server, body)
    with pytest.raises(DataValidationError):
        processing.process(payload.id)


def test_aggregation_totals_per_country_and_month(idmc, idmc_server) -> None:
    payload = _stored(idmc, idmc_server, {"results": IDU_RECORDS})
    processing.process(payload.id)
    result = aggregation.country_month_totals(payload.variable_id)
    db.session.commit()
    assert result["rows"] == 4
    rows = db.session.scalars(select(CountryMonthTotal))
    totals = {(t.iso3, t.month): (t.total, t.points) for t in rows}
    assert totals[("AFG", date(2024, 1, 1))] == (1500.0, 2)
    assert totals[("COD", date(2024, 2, 1))] == (4000.0, 1)
    aggregation.country_month_totals(payload.variable_id)  # a rebuild, not an addition
    assert db.session.scalar(select(func.count()).select_from(CountryMonthTotal)) == 4


def test_location_names_match_the_gazetteer_after_normalization(idmc, idmc_server) -> None:
    assert normalize_name("  The Gambia ") == "gambia"
    assert match_name("COTE D\u2019IVOIRE") == "CIV" and match_name("Türkiye") == "TUR"
    assert match_name("Democratic Republic of the Congo") == "COD"
    assert match_name("Atlantis") is None
    from app.location.matching import match_locations

    payload = _stored(idmc, idmc_server, IDU_RECORDS)
    processing.process(payload.id)
    result = match_locations(payload.variable_id)
    assert result["matched"] == 4
    assert result["unmatched"] == [{"name": "Atlantis", "points": 1}]
    assert match_locations(payload.variable_id)["matched"] == 0  # already matched


def test_validation_finds_gaps_duplicates_and_outliers(idmc, idmc_server) -> None:
    records = [
        {"id": i, "country": "Sudan", "iso3": "SDN", "figure": 100 + i,
         "displacement_date": f"2024-{month:02d}-05"}
        for i, month in enumerate([1, 2, 3, 5, 6, 7], start=1)
    ] + [
        {"id": 50, "country": "Sudan", "iso3": "SDN", "figure": 104, "date": "2024-05-05"},
        {"id": 60, "country": "Sudan", "iso3": "SDN", "figure": 900000, "date": "2024-06-09"},
    ]  # fmt: skip
    payload = _stored(idmc, idmc_server, records)
    processing.process(payload.id)
    aggregation.country_month_totals(payload.variable_id)
    report = validation.validate("idmc")
    [entry] = report["variables"]
    assert entry["gaps"] == [{"iso3": "SDN", "missing_months": ["2024-04"]}]
    duplicate = {"iso3": "SDN", "date": "2024-05-05", "value": 104.0, "count": 2}
    assert entry["duplicates"] == [duplicate]
    assert [o["id"] for o in entry["outliers"]] == ["60"]
    assert report["ok"] is False and (report["gaps"], report["duplicates"]) == (1, 1)


def test_daily_statistics_sum_yesterday_from_the_hourly_roll_ups(app: Flask) -> None:
    from app.monitoring import rollups
    from app.tasks import task_monitoring

    yesterday = utcnow().replace(hour=12) - timedelta(days=1)
    r_fetch = {"task_name": "r.fetch", "task_type": "retrieval"}
    for seconds in range(1, 21):  # durations 1..20 s
        factories.execution(**r_fetch, **factories.ran(seconds, yesterday))
    factories.execution(**r_fetch, status=TaskStatus.FAILURE, **factories.ran(40, yesterday))
    factories.execution(  # not final
        task_name="m.check",
        task_type="monitoring",
        status=TaskStatus.STARTED,
        created_at=yesterday,
        started_at=yesterday + timedelta(seconds=1),
    )
    factories.execution(**r_fetch, **factories.ran(1, utcnow()))  # today
    db.session.commit()
    rollups.rebuild(yesterday - timedelta(days=1))  # what the recorder counted
    db.session.commit()
    result = task_monitoring.aggregate_daily_statistics()
    assert result["day"] == yesterday.date().isoformat() and result["finished"] == 21
    (fetch,) = result["tasks"]
    assert (fetch["task_type"], fetch["task_name"]) == ("retrieval", "r.fetch")
    assert fetch["counts"] == {"success": 20, "failure": 1, "revoked": 0}
    assert fetch["duration_avg_seconds"] == round(250 / 21, 3)
    assert fetch["duration_p95_estimate"] and 10 < fetch["duration_p95_seconds"] <= 30
    assert task_monitoring.aggregate_daily_statistics(result["day"]) == result  # any day, again
    assert task_monitoring.aggregate_daily_statistics("2020-01-01")["tasks"] == []


def test_failure_rates_and_queue_depth_raise_alerts_once(app: Flask, redis_client) -> None:
    from app.tasks import task_monitoring

    now = utcnow() - timedelta(minutes=5)
    for index in range(10):
        status = TaskStatus.FAILURE if index < 4 else TaskStatus.SUCCESS
        factories.execution(task_name="r.fetch", task_type="retrieval", status=status,
                            **factories.ran(1, now))  # fmt: skip
        factories.execution(task_name="a.sum", task_type="aggregation", **factories.ran(1, now))
    db.session.commit()
    redis_client.rpush("data_processing", *[b"{}"] * 6)
    result = task_monitoring.check_failure_rates(threshold=0.3, max_depth=5)
    assert result["types"]["retrieval"]["rate"] == 0.4
    assert result["types"]["retrieval"]["over_threshold"] is True
    assert result["types"]["aggregation"]["over_threshold"] is False
    assert result["queue_depths"]["data_processing"] == 6
    kinds = sorted(a.kind for a in db.session.scalars(select(Alert)))
    assert kinds == ["failure_rate", "queue_depth"]
    assert task_monitoring.check_failure_rates(threshold=0.3, max_depth=5)["alert_ids"] == []
    assert task_monitoring.check_failure_rates(threshold=0.5, max_depth=10)["alert_ids"] == []


def test_health_check_alerts_when_unhealthy(make_app, app: Flask) -> None:
    from app.tasks import task_monitoring
    from tests.support import REFUSED_PORT

    result = task_monitoring.health_check.run()  # no worker, no beat here: unhealthy
    assert result["checks"]["redis"]["ok"] and result["checks"]["database"]["ok"]
    assert "workers" in result["failing"] and "beat" in result["failing"]
    broken = make_app(REDIS_URL=f"redis://127.0.0.1:{REFUSED_PORT}/0")
    with broken.app_context():
        result = task_monitoring.health_check.run()
        assert result["healthy"] is False and result["failing"] == ["redis"]
        alert = db.session.get(Alert, result["alert_id"])
        assert alert.kind == "health" and alert.severity == "critical"


def test_maintenance_cleans_prunes_rotates_and_optimizes(app: Flask, tmp_path) -> None:
    from app.tasks import maintenance

    old = utcnow() - timedelta(days=100)
    factories.execution(task_name="x", task_type="retrieval", **factories.ran(1, old))
    factories.execution(task_name="x", task_type="retrieval", **factories.ran(1, utcnow()))
    factories.alert(kind="health", severity="error", title="old", created_at=old)
    factories.alert(kind="health", severity="error", title="new")
    db.session.commit()
    assert maintenance.cleanup_old_executions(days=90)["deleted"] == 1
    assert db.session.scalar(select(func.count()).select_from(TaskExecution)) == 1
    assert maintenance.prune_dead_letters_and_alerts(alert_days=30)["alerts"] == 1
    assert [a.title for a in db.session.scalars(select(Alert))] == ["new"]

    app.config.update(LOG_DIR=str(tmp_path), LOG_MAX_BYTES=10, LOG_BACKUPS=2)
    log = tmp_path / "worker.log"
    for text in ("first rotation", "second rotation", "third rotation"):
        log.write_text(text)
        assert maintenance.rotate_logs()["rotated"] == ["worker.log"]
    assert log.read_text() == ""
    assert (tmp_path / "worker.log.1").read_text() == "third rotation"
    assert (tmp_path / "worker.log.2").read_text() == "second rotation"
    assert not (tmp_path / "worker.log.3").exists()

    done = maintenance.optimize_database()
    expected = "VACUUM (ANALYZE)" if db.engine.dialect.name == "postgresql" else "ANALYZE"
    assert expected in done["done"]
