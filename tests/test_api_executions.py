"""The executions API: filters, keyset cursors, detail, retry, cancel, bulk, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, TaskStatus
from tests import factories

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def test_list_newest_first_with_cursors_both_ways(client: FlaskClient, api_viewer: dict) -> None:
    rows = factories.executions(25, BASE)
    db.session.commit()
    first = client.get("/tasks/api/executions/?page_size=10", headers=api_viewer).json
    assert [i["task_id"] for i in first["items"]] == [r.task_id for r in rows[::-1][:10]]
    assert first["previous_cursor"] is None and first["next_cursor"]
    second = client.get(
        f"/tasks/api/executions/?page_size=10&cursor={first['next_cursor']}", headers=api_viewer
    ).json
    assert [i["task_id"] for i in second["items"]] == [r.task_id for r in rows[::-1][10:20]]
    back = client.get(
        f"/tasks/api/executions/?page_size=10&cursor={second['previous_cursor']}",
        headers=api_viewer,
    ).json
    assert back["items"] == first["items"]
    assert back["previous_cursor"] is None
    third = client.get(
        f"/tasks/api/executions/?page_size=10&cursor={second['next_cursor']}", headers=api_viewer
    ).json
    assert len(third["items"]) == 5 and third["next_cursor"] is None


def test_cursor_stable_while_rows_arrive(client: FlaskClient, api_viewer: dict) -> None:
    rows = factories.executions(30, BASE)
    db.session.commit()
    seen, cursor = [], None
    for page_number in range(4):
        url = "/tasks/api/executions/?page_size=8" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=api_viewer).json
        seen += [i["task_id"] for i in page["items"]]
        # new executions arrive between pages, newer than everything (and one with a tie)
        factories.executions(
            3, datetime.now(UTC) + timedelta(minutes=page_number), step=timedelta(0)
        )
        db.session.commit()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r.task_id for r in rows[::-1]]  # no duplicate, no gap


def test_combined_filters(client: FlaskClient, api_viewer: dict) -> None:
    factories.executions(3, BASE, status=TaskStatus.FAILURE, task_type="retrieval", started_at=BASE)
    wanted = factories.executions(
        2, BASE, status=TaskStatus.FAILURE, task_type="processing", queue="data_processing"
    )
    factories.executions(
        2, BASE, status=TaskStatus.SUCCESS, task_type="processing", queue="data_processing"
    )
    factories.execution(
        created_at=BASE,
        status=TaskStatus.REVOKED,
        task_type="processing",
        queue="data_processing",
        task_name="other",
    )
    db.session.commit()
    url = (
        "/tasks/api/executions/?status=failure&status=revoked&task_type=processing"
        "&queue=data_processing&task_name=data_pipeline.tasks.retrieve_source"
        "&created_from=2025-12-31T00:00:00Z&created_to=2026-01-02T00:00:00%2B00:00"
    )
    body = client.get(url, headers=api_viewer).json
    assert sorted(i["task_id"] for i in body["items"]) == sorted(r.task_id for r in wanted)
    prefix = wanted[0].task_id[:8]
    body = client.get(f"/tasks/api/executions/?task_id_prefix={prefix}", headers=api_viewer).json
    assert [i["task_id"] for i in body["items"]] == [wanted[0].task_id]
    body = client.get("/tasks/api/executions/?task_id_prefix=%25", headers=api_viewer).json
    assert body["items"] == []  # LIKE wildcards are literal
    assert (
        client.get("/tasks/api/executions/?started_from=2026-01-01T00:00:00Z", headers=api_viewer)
        .json["items"]
        .__len__()
        == 3
    )


@pytest.mark.parametrize(
    "query, status, code",
    [
        ("status=nope", 422, "invalid"),
        ("page_size=501", 422, "invalid"),
        ("page_size=0", 422, "invalid"),
        ("created_from=yesterday", 422, "invalid"),
        ("unknown=1", 422, "invalid"),
        ("source=abc", 422, "invalid"),
        ("cursor=not-a-cursor", 400, "bad_cursor"),
        ("cursor=WyJ4IiwxLCJuZXh0Il0", 400, "bad_cursor"),
    ],
)
def test_bad_filters(
    client: FlaskClient, api_viewer: dict, query: str, status: int, code: str
) -> None:
    response = client.get(f"/tasks/api/executions/?{query}", headers=api_viewer)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert set(response.json["error"]) == {"code", "message", "fields"}


def test_detail_and_404(client: FlaskClient, api_viewer: dict) -> None:
    row = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    retry = factories.execution(created_at=BASE)
    db.session.commit()
    retry.retry_of = row.task_id
    row.traceback, row.logs = "Traceback...", [{"level": "INFO", "message": "hi"}]
    row.attempts = [{"attempt": 1, "status": "failure", "worker": "w1"}]
    db.session.commit()
    body = client.get(f"/tasks/api/executions/{row.task_id}/", headers=api_viewer).json
    assert body["traceback"] == "Traceback..." and body["retried_by"] == [retry.task_id]
    assert body["attempts"][0]["worker"] == "w1" and body["error_message"] == "boom"
    response = client.get("/tasks/api/executions/missing/", headers=api_viewer)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_retry_rules(client: FlaskClient, api_operator: dict, api_viewer: dict) -> None:
    done = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    response = client.post(f"/tasks/api/executions/{done.task_id}/retry/", headers=api_operator)
    assert response.status_code == 409 and response.json["error"]["code"] == "conflict"
    response = client.post(f"/tasks/api/executions/{failed.task_id}/retry/", headers=api_viewer)
    assert response.status_code == 403
    response = client.post(f"/tasks/api/executions/{failed.task_id}/retry/", headers=api_operator)
    assert response.status_code == 202
    assert response.json["retry_of"] == failed.task_id and response.json["status"] == "pending"
    assert response.json["url"].endswith(f"/{response.json['task_id']}/")
    actions = db.session.scalars(select(AuditEntry.action)).all()
    assert actions.count("execution.retry") == 2
    assert client.post("/tasks/api/executions/nope/retry/", headers=api_operator).status_code == 404


def test_cancel_and_bulk(client: FlaskClient, api_operator: dict) -> None:
    pending = factories.execution(created_at=BASE, status=TaskStatus.PENDING)
    finished = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    response = client.post(
        f"/tasks/api/executions/{finished.task_id}/cancel/", headers=api_operator
    )
    assert response.status_code == 409
    body = client.post(
        "/tasks/api/executions/bulk/cancel/",
        json={"task_ids": [pending.task_id, finished.task_id, "missing"]},
        headers=api_operator,
    ).json
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        (pending.task_id, 202),
        (finished.task_id, 409),
        ("missing", 404),
    ]
    body = client.post(
        "/tasks/api/executions/bulk/retry/",
        json={"task_ids": [failed.task_id, finished.task_id]},
        headers=api_operator,
    ).json
    assert [r["status"] for r in body["results"]] == [202, 409]
    assert body["results"][0]["new_task_id"]


@pytest.mark.parametrize(
    "payload, status",
    [
        ({}, 422),
        ({"task_ids": []}, 422),
        ({"task_ids": "x"}, 422),
        ({"task_ids": ["a"] * 501}, 422),
        ({"task_ids": ["a"], "x": 1}, 422),
    ],
)
def test_bulk_bad_bodies(
    client: FlaskClient, api_operator: dict, payload: dict, status: int
) -> None:
    response = client.post("/tasks/api/executions/bulk/retry/", json=payload, headers=api_operator)
    assert response.status_code == status and response.json["error"]["code"] == "invalid"


def test_malformed_json_is_400(client: FlaskClient, api_operator: dict) -> None:
    response = client.post(
        "/tasks/api/executions/bulk/retry/",
        data="{nope",
        headers={**api_operator, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_json"


def test_405_and_unknown_path_are_json(client: FlaskClient, api_viewer: dict) -> None:
    response = client.delete("/tasks/api/executions/", headers=api_viewer)
    assert response.status_code == 405, response.status_code
    assert response.json["error"]["code"] == "method_not_allowed"
    missing = client.get("/tasks/api/no-such-resource/", headers=api_viewer)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "url", ["/tasks/api/scheduled/4294967296/", "/tasks/api/scheduled/9223372036854775807/"]
)
def test_ids_beyond_the_column_are_404(client: FlaskClient, api_viewer: dict, url: str) -> None:
    assert client.get(url, headers=api_viewer).status_code == 404
    huge = client.get("/tasks/api/executions/?source=4294967296", headers=api_viewer)
    assert huge.status_code == 422


def test_nul_characters_are_refused_not_500(client: FlaskClient, api_viewer: dict) -> None:
    response = client.get("/tasks/api/executions/%00/", headers=api_viewer)
    assert response.status_code in (404, 422) and "error" in response.json
    response = client.get("/tasks/api/executions/?task_name=a%00b", headers=api_viewer)
    assert response.status_code in (200, 422)


def test_a_retry_to_an_unconfigured_queue_is_refused_and_audited(
    client: FlaskClient, api_operator: dict, redis_client: redis.Redis
) -> None:
    stray = factories.execution(created_at=BASE, status=TaskStatus.FAILURE, queue="no_such_queue")
    db.session.commit()
    for _ in range(2):
        response = client.post(
            f"/tasks/api/executions/{stray.task_id}/retry/", headers=api_operator
        )
        assert response.status_code == 409 and response.json["error"]["code"] == "unroutable"
        assert "no_such_queue is not configured" in response.json["error"]["message"]
    assert not redis_client.exists("no_such_queue")
    outcomes = db.session.scalars(
        select(AuditEntry.outcome).where(AuditEntry.action == "execution.retry")
    ).all()
    assert outcomes == ["unroutable", "unroutable"]
