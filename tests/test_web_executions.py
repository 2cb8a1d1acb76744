"""The executions pages: list filters in the URL, keyset pages, polled table, batch actions,
streamed export, and the execution detail with its self-stopping live part."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from app.extensions import db
from app.models import (
    AuditEntry,
    Role,
    TaskExecution,
    TaskStatus,
)
from app.services.executions import batches
from tests import factories
from tests.support import HTMX, htmx

BASE = datetime(2026, 1, 1, tzinfo=UTC)
LIST = "/tasks/executions/"


def bulk_insert(count: int, **values: object) -> None:
    """``count`` processing successes in one statement (no ORM objects), one second apart."""
    rows = [
        factories.execution_values(
            **{
                "task_name": "data_pipeline.tasks.process_source",
                "status": TaskStatus.SUCCESS,
                "queue": "data_processing",
                "created_at": BASE + timedelta(seconds=i),
                "updated_at": BASE + timedelta(seconds=i),
                "started_at": BASE + timedelta(seconds=i),
                "completed_at": BASE + timedelta(seconds=i, milliseconds=250),
                **values,
            }
        )
        for i in range(count)
    ]
    db.session.execute(insert(TaskExecution), rows)
    db.session.commit()


def executions_audited() -> int:
    query = select(func.count()).where(AuditEntry.action.like("execution.%"))
    return db.session.scalar(query)


def ids_in(html: str) -> set[str]:
    """The task ids listed in a table (each row has a checkbox carrying its id)."""
    return set(re.findall(r'name="task_ids" value="([0-9a-f-]{36})"', html))


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable) -> FlaskClient:
    login_as(client, Role.VIEWER)
    return client


@pytest.fixture
def operator(app: Flask, login_as: Callable) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login_as(client, Role.OPERATOR)


# --- the list -------------------------------------------------------------------------------


def test_list_shows_the_columns_newest_first(viewer: FlaskClient) -> None:
    source = factories.source(name="IDMC")
    variable = factories.variable(source, code="new_displacements", name="New displacements")
    db.session.commit()
    old = factories.execution(created_at=BASE, task_type="retrieval", source_id=source.id)
    new = factories.execution(
        created_at=BASE + timedelta(hours=1),
        status=TaskStatus.FAILURE,
        error_message="ValueError: the feed answered 502",
        started_at=BASE + timedelta(hours=1),
        completed_at=BASE + timedelta(hours=1, seconds=3),
        variable_id=variable.id,
        source_id=source.id,
    )
    db.session.commit()
    response = viewer.get(LIST)
    assert response.status_code == 200
    html = response.text
    assert html.index(new.task_id) < html.index(old.task_id)
    assert f'href="/tasks/executions/{new.task_id}/"' in html
    assert 'class="status status-failure"' in html and "ValueError: the feed answered 502" in html
    assert "retrieval" in html and "idmc / new_displacements" in html
    assert "3.0 s" in html  # duration
    assert 'data-select-all="task_ids"' in html
    assert 'data-hx-trigger="every 30s' in html and "data-live" in html
    assert 'href="/tasks/executions/export?format=csv"' in html


@pytest.mark.parametrize(
    "query, wanted",
    [
        ("status=failure", {"failed"}),
        ("status=failure&status=revoked", {"failed", "revoked"}),
        ("task_type=processing", {"processing"}),
        ("task_name=other.task", {"other_name"}),
        ("queue=slow", {"slow_queue"}),
        ("source={source}", {"sourced"}),
        ("variable={variable}", {"sourced"}),
        ("created_from=2026-01-03T00:00", {"late"}),
        ("created_to=2026-01-01", {"failed", "revoked", "processing"}),  # the whole day 1
        ("created_from=2026-01-02&created_to=2026-01-02T12:00", {"other_name", "slow_queue"}),
        ("q={prefix}", {"failed"}),
        ("q={exact}", {"failed"}),
        ("q={upper}", {"failed"}),
        ("status=failure&task_type=processing", set()),
        ("status=success&queue=slow&created_from=2026-01-02", {"slow_queue"}),
    ],
)
def test_each_filter_and_combinations(viewer: FlaskClient, query: str, wanted: set[str]) -> None:
    source = factories.source(name="IDMC")
    variable = factories.variable(source, code="stock", name="Stock")
    db.session.commit()
    day = timedelta(days=1)
    rows = {
        "failed": factories.execution(status=TaskStatus.FAILURE, created_at=BASE),
        "revoked": factories.execution(
            status=TaskStatus.REVOKED, created_at=BASE + timedelta(hours=1)
        ),
        "processing": factories.execution(
            task_type="processing", created_at=BASE + timedelta(hours=2)
        ),
        "other_name": factories.execution(task_name="other.task", created_at=BASE + day),
        "slow_queue": factories.execution(queue="slow", created_at=BASE + day + timedelta(hours=1)),
        "late": factories.execution(created_at=BASE + 2 * day + timedelta(hours=1)),
        "sourced": factories.execution(
            created_at=BASE + day + timedelta(hours=13),
            source_id=source.id,
            variable_id=variable.id,
        ),
    }
    db.session.commit()
    failed = rows["failed"].task_id
    query = query.format(
        source=source.id,
        variable=variable.id,
        prefix=failed[:6],
        exact=failed,
        upper=failed.upper(),
    )
    response = viewer.get(f"{LIST}?{query}")
    assert response.status_code == 200, response.text
    assert ids_in(response.text) == {rows[name].task_id for name in wanted}
    if not wanted:
        assert "No executions match these filters." in response.text


def test_dates_are_read_in_the_users_timezone(viewer: FlaskClient) -> None:
    before = factories.execution(created_at=datetime(2026, 1, 1, 14, 59, tzinfo=UTC))
    after = factories.execution(created_at=datetime(2026, 1, 1, 15, 1, tzinfo=UTC))
    db.session.commit()
    page = viewer.get(LIST)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    viewer.post("/tasks/preferences", data={"timezone": "Asia/Tokyo", "csrf_token": csrf})
    # 2026-01-02 00:00 in Tokyo is 2026-01-01 15:00 UTC
    response = viewer.get(f"{LIST}?created_from=2026-01-02T00:00")
    assert ids_in(response.text) == {after.task_id}
    response = viewer.get(f"{LIST}?created_to=2026-01-01")  # the whole Tokyo day
    assert ids_in(response.text) == {before.task_id}
    assert "Asia/Tokyo" in response.text


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=nope", "not a valid choice"),
        ("task_type=nope", "Not a valid choice"),
        ("source=abc", "Not a valid choice"),
        ("source=99999", "Not a valid choice"),
        ("variable=-1", "Not a valid choice"),
        ("created_from=yesterday", "Use a date like"),
        ("created_from=2026-01-02&created_to=2026-01-01T10:00", "The end must come after"),
        ("q=not%20an%20id!", "only hex digits"),
        ("q=" + "a" * 37, "Field cannot be longer"),
        ("task_name=a%00b", "Control characters"),
        ("queue=" + "q" * 101, "Field cannot be longer"),
        ("cursor=not-a-cursor", "The cursor is not valid"),
        ("cursor=WyJ4IiwxLCJuZXh0Il0", "The cursor is not valid"),
    ],
)
def test_bad_filters_are_a_400_with_the_message(
    viewer: FlaskClient, query: str, message: str
) -> None:
    factories.execution(created_at=BASE)
    db.session.commit()
    response = viewer.get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert message in response.text
    assert 'role="search"' in response.text  # the form is there to fix the value
    assert ids_in(response.text) == set()


def test_cursor_pages_keep_the_filters(viewer: FlaskClient) -> None:
    bulk_insert(120, queue="bulk")
    bulk_insert(5, queue="other")
    first = viewer.get(f"{LIST}?queue=bulk&status=success")
    assert len(ids_in(first.text)) == 50
    assert "Older →" in first.text and "← Newer" not in first.text
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    assert "queue=bulk" in older and "status=success" in older and "cursor=" in older
    second = viewer.get(older)
    assert len(ids_in(second.text)) == 50 and not ids_in(second.text) & ids_in(first.text)
    assert 'data-hx-trigger="every 30s' not in second.text  # older pages are not polled
    third_url = re.search(r'<a rel="next" href="([^"]+)"', second.text).group(1)
    third = viewer.get(third_url.replace("&amp;", "&"))
    assert len(ids_in(third.text)) == 20 and "Older →" not in third.text
    back = re.search(r'<a rel="prev" href="([^"]+)"', second.text).group(1).replace("&amp;", "&")
    newest = viewer.get(back)
    assert ids_in(newest.text) == ids_in(first.text)
    assert "← Newer" not in newest.text
    assert 'data-hx-trigger="every 30s' in newest.text  # back on the newest page: live again
    total = db.session.scalar(select(func.count()).select_from(TaskExecution))
    assert total == 125


def test_fragment_for_htmx_with_etag_and_304(viewer: FlaskClient) -> None:
    factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    page = viewer.get(f"{LIST}?status=failure")
    assert "<html" in page.text and 'id="executions-table"' in page.text
    fragment = viewer.get(f"{LIST}?status=failure", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and fragment.text.lstrip().startswith(
        '<div id="executions-table"'
    )
    assert f'data-hx-get="{LIST}?status=failure"' in fragment.text
    assert "HX-Request" in fragment.headers["Vary"]
    etag = fragment.headers["ETag"]
    again = viewer.get(f"{LIST}?status=failure", headers=htmx(etag=etag))
    assert again.status_code == 304 and again.data == b""
    factories.execution(status=TaskStatus.FAILURE, created_at=BASE + timedelta(minutes=1))
    db.session.commit()
    changed = viewer.get(f"{LIST}?status=failure", headers=htmx(etag=etag))
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_polled_fragment_keeps_the_checked_rows(viewer: FlaskClient) -> None:
    kept, other = (
        factories.execution(created_at=BASE),
        factories.execution(created_at=BASE + timedelta(seconds=1)),
    )
    db.session.commit()
    fragment = viewer.get(f"{LIST}?task_ids={kept.task_id}", headers=HTMX).text
    assert re.search(rf'value="{kept.task_id}" id="select-\d+" checked', fragment)
    assert not re.search(rf'value="{other.task_id}" id="select-\d+" checked', fragment)
    assert "data-hx-include=\"[name='task_ids']\"" in fragment
    assert 'id="select-all-executions" data-select-all="task_ids" data-hx-preserve' in fragment


# --- batch actions --------------------------------------------------------------------------


def test_bulk_retry_says_what_happened_to_each(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    revoked = factories.execution(created_at=BASE, status=TaskStatus.REVOKED)
    done = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    db.session.commit()
    unknown = str(uuid.uuid4())
    response = client.post(
        "/tasks/executions/retry",
        data={
            "csrf_token": csrf,
            "task_ids": [failed.task_id, revoked.task_id, done.task_id, unknown, "junk"],
            "back": "/tasks/executions/?status=failure",
        },
    )
    assert response.status_code == 200
    html = response.text
    assert "2 of 5 retried." in html
    assert "Only failed, revoked or lost executions can be retried; this one is success." in html
    assert html.count("No execution with task id") == 2
    assert html.count(">retried<") == 2
    assert 'href="/tasks/executions/?status=failure"' in html
    audited = db.session.scalars(
        select(AuditEntry.target_id).where(AuditEntry.action == "execution.retry")
    ).all()
    assert {failed.task_id, revoked.task_id, done.task_id} <= set(audited)
    details = db.session.scalars(
        select(AuditEntry.details).where(AuditEntry.target_id == failed.task_id)
    ).one()
    assert details["new_task_id"] in html


def test_bulk_cancel_and_htmx_fragment(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    pending = factories.execution(created_at=BASE, status=TaskStatus.PENDING)
    finished = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    db.session.commit()
    response = client.post(
        "/tasks/executions/cancel",
        data={"csrf_token": csrf, "task_ids": [pending.task_id, finished.task_id]},
        headers=HTMX,
    )
    assert response.status_code == 200 and "<html" not in response.text
    assert response.headers["HX-Trigger"] == "executions-changed"
    assert "1 of 2 cancelled." in response.text
    assert "The execution is already success." in response.text
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "execution.cancel"))
    assert entry.target_id == pending.task_id and entry.actor_name == "operator"


def test_selection_bounds(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    response = client.post("/tasks/executions/retry", data={"csrf_token": csrf})
    assert response.status_code == 422 and "Select at least one execution." in response.text
    many = [str(uuid.uuid4()) for _ in range(1001)]
    response = client.post("/tasks/executions/cancel", data={"csrf_token": csrf, "task_ids": many})
    assert response.status_code == 422
    assert "Select at most 1000 executions at a time (1001 selected)." in response.text
    assert executions_audited() == 0
    response = client.post(
        "/tasks/executions/analyze", data={"csrf_token": csrf, "task_ids": many}, headers=HTMX
    )
    assert response.status_code == 200  # HTMX swaps only 2xx: the refusal is shown in place
    assert "Select at most 1000" in response.text and "HX-Trigger" not in response.headers


def test_viewer_may_analyze_but_not_act(viewer: FlaskClient) -> None:
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', viewer.get(LIST).text).group(1)
    page = viewer.get(LIST).text
    assert "/tasks/executions/analyze" in page
    assert "/tasks/executions/retry" not in page and "/tasks/executions/cancel" not in page
    data = {"csrf_token": csrf, "task_ids": [failed.task_id]}
    assert viewer.post("/tasks/executions/retry", data=data).status_code == 403
    assert viewer.post("/tasks/executions/cancel", data=data).status_code == 403
    assert viewer.post("/tasks/executions/analyze", data=data).status_code == 200
    assert db.session.scalar(select(TaskExecution.status)) == TaskStatus.FAILURE


def test_batch_actions_need_the_csrf_token(operator: tuple[FlaskClient, str]) -> None:
    client, _csrf = operator
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    for action in ("retry", "cancel", "analyze"):
        response = client.post(f"/tasks/executions/{action}", data={"task_ids": [failed.task_id]})
        assert response.status_code == 400, action
        assert "The form expired" in response.text
    assert executions_audited() == 0


def test_analysis_of_a_selection(viewer: FlaskClient) -> None:
    start = BASE
    chosen = [
        factories.execution(
            status=TaskStatus.SUCCESS,
            started_at=start,
            completed_at=start + timedelta(seconds=seconds),
            created_at=start + timedelta(seconds=i),
        )
        for i, seconds in enumerate(range(1, 21))  # 1..20 s
    ]
    chosen += [
        factories.execution(
            created_at=BASE,
            status=TaskStatus.FAILURE,
            error_message="TimeoutError: feed\nTraceback line",
        ),
        factories.execution(
            created_at=BASE, status=TaskStatus.FAILURE, error_message="TimeoutError: feed"
        ),
        factories.execution(
            created_at=BASE, status=TaskStatus.FAILURE, error_message="KeyError: 'x'"
        ),
        factories.execution(created_at=BASE, status=TaskStatus.PENDING),
    ]
    factories.execution(created_at=BASE, status=TaskStatus.FAILURE, error_message="not selected")
    db.session.commit()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', viewer.get(LIST).text).group(1)
    response = viewer.post(
        "/tasks/executions/analyze",
        data={
            "csrf_token": csrf,
            "task_ids": [e.task_id for e in chosen] + [str(uuid.uuid4()), "junk\x00id"],
        },
    )
    assert response.status_code == 200
    html = response.text
    assert "24 of 26 selected executions found." in html
    facts = re.sub(r"\s+", " ", html)
    assert 'status-success">success</span></dt><dd class="num">20' in facts
    assert 'status-failure">failure</span></dt><dd class="num">3' in facts
    assert "Minimum</dt><dd>1.0 s" in facts and "Maximum</dt><dd>20.0 s" in facts
    assert "Average</dt><dd>10.5 s" in facts and "95th percentile</dt><dd>19.0 s" in facts
    errors = re.findall(r"<tr><td><code[^>]*>([^<]+)</code></td><td class=\"num\">(\d+)", html)
    assert errors[0] == ("TimeoutError: feed", "2") and ("KeyError: &#39;x&#39;", "1") in errors
    assert "not selected" not in html


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        " =1+1",
        "\uff1d1+1",
        "\uff0b3",
        "\uff0d2",
        "\uff20SUM(A1)",
        "@SUM(A1)",
        "-2",
        "+3",
        "=1",
        "\t=1",
        "\r=1",
        "\n=1",
        "\u3000=1",
        "  @x",
    ],
)
def test_export_neutralises_every_formula_like_start(value: str) -> None:
    from app.web.export import neutralise

    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a;b", "a=b", "", "1.5", "é=1"])
def test_export_leaves_plain_text_alone(value: str) -> None:
    from app.web.export import neutralise

    assert neutralise(value) == value
    assert neutralise(7) == 7 and neutralise(None) is None


def test_export_quotes_every_cell(viewer: FlaskClient) -> None:
    fullwidth = "\uff1d1+1"
    bulk_insert(1, status=TaskStatus.FAILURE, error_message="a;b", queue=" =1+1", worker=fullwidth)
    text = viewer.get("/tasks/executions/export?format=csv").get_data(as_text=True)
    header, line = text.splitlines()[:2]
    assert header.startswith('"task_id","task_name",')
    assert '"a;b"' in line and '"\' =1+1"' in line and '"\'\uff1d1+1"' in line
    quoted = r'"(?:[^"]|"")*"'
    assert re.fullmatch(f"{quoted}(?:,{quoted})*", line)  # no ";" ever outside quotes
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["error_message"] == "a;b" and row["queue"] == "' =1+1"


def test_export_csv_streams_every_filtered_row(viewer: FlaskClient) -> None:
    bulk_insert(4500)
    bulk_insert(
        30,
        status=TaskStatus.FAILURE,
        error_message='=HYPERLINK("http://evil")',
        task_name="@SUM(1+1)",
        queue="-danger",
    )
    response = viewer.get("/tasks/executions/export?format=csv")
    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    assert response.is_streamed
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="executions-\d{8}T\d{6}Z\.csv"', disposition)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 4530
    assert list(rows[0]) == [
        "task_id",
        "task_name",
        "task_type",
        "status",
        "queue",
        "worker",
        "source",
        "variable",
        "created_at",
        "started_at",
        "completed_at",
        "duration_seconds",
        "retry_count",
        "error_message",
        "retry_of",
        "parent_id",
        "root_id",
        "schedule_id",
        "is_dead_letter",
    ]
    assert len({r["task_id"] for r in rows}) == 4530
    assert rows[0]["created_at"] >= rows[-1]["created_at"]  # newest first
    assert rows[-1]["duration_seconds"] == "0.25"
    filtered = viewer.get("/tasks/executions/export?format=csv&status=failure")
    bad = list(csv.DictReader(io.StringIO(filtered.get_data(as_text=True))))
    assert len(bad) == 30
    assert bad[0]["error_message"] == '\'=HYPERLINK("http://evil")'
    assert bad[0]["task_name"] == "'@SUM(1+1)" and bad[0]["queue"] == "'-danger"


def test_export_json_with_filters(viewer: FlaskClient) -> None:
    bulk_insert(2100, queue="a")
    bulk_insert(10, queue="b", status=TaskStatus.REVOKED)
    response = viewer.get("/tasks/executions/export?format=json&queue=a")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].endswith('.json"')
    items = json.loads(response.get_data(as_text=True))
    assert len(items) == 2100 and {i["queue"] for i in items} == {"a"}
    assert items[0]["status"] == "success" and items[0]["created_at"].endswith("+00:00")
    revoked = json.loads(
        viewer.get("/tasks/executions/export?format=json&status=revoked").get_data(as_text=True)
    )
    assert len(revoked) == 10
    empty = viewer.get("/tasks/executions/export?format=json&queue=none")
    assert json.loads(empty.get_data(as_text=True)) == []


def test_export_refuses_bad_input(viewer: FlaskClient) -> None:
    response = viewer.get("/tasks/executions/export?format=xlsx")
    assert response.status_code == 400 and "Unknown export format xlsx" in response.text
    response = viewer.get("/tasks/executions/export?format=csv&status=nope")
    assert response.status_code == 400 and "not a valid choice" in response.text


def test_batches_read_keyset_chunks(app: Flask) -> None:
    bulk_insert(2345)
    columns = (TaskExecution.task_id, TaskExecution.created_at, TaskExecution.id)
    sizes, seen = [], []
    for batch in batches({}, columns, size=500):
        sizes.append(len(batch))
        seen += [row.task_id for row in batch]
    assert sizes == [500, 500, 500, 500, 345]
    assert len(seen) == len(set(seen)) == 2345


# --- detail ---------------------------------------------------------------------------------


def test_detail_of_a_success(viewer: FlaskClient) -> None:
    execution = factories.execution(
        created_at=BASE,
        status=TaskStatus.SUCCESS,
        task_type="retrieval",
        worker="celery@w1",
        started_at=BASE + timedelta(seconds=1),
        completed_at=BASE + timedelta(seconds=4),
        result={"rows": 12, "country": "Côte d'Ivoire"},
        args=["idmc", 2026],
        kwargs={"force": True},
        cpu_seconds=1.5,
        peak_memory_bytes=50 * 1024 * 1024,
        logs=[{"time": 1767225601.5, "level": "INFO", "logger": "pipeline", "message": "12 rows"}],
        attempts=[
            {
                "run_id": "r1",
                "attempt": 0,
                "status": "success",
                "worker": "celery@w1",
                "started_at": "2026-01-01T00:00:01+00:00",
                "completed_at": "2026-01-01T00:00:04+00:00",
                "cpu_seconds": 1.5,
                "peak_memory_bytes": 52428800,
            }
        ],
    )
    db.session.commit()
    response = viewer.get(f"/tasks/executions/{execution.task_id}/")
    assert response.status_code == 200
    html = response.text
    assert "data_pipeline.tasks.retrieve_source" in html and execution.task_id in html
    assert "&#34;country&#34;: &#34;Côte d&#39;Ivoire&#34;" in html  # indented JSON, escaped
    assert "&#34;rows&#34;: 12" in html and "&#34;force&#34;: true" in html
    assert "Attempt 1 started" in html and "Attempt 1 ended" in html and "celery@w1" in html
    assert "50.0 MB" in html and "1.5 s" in html and "3.0 s" in html
    assert "12 rows" in html and "pipeline" in html
    for label in ("Result", "args", "kwargs"):  # scrolling blocks are reachable by keyboard
        assert f'tabindex="0" role="region" aria-label="{label}">' in html, label
    assert "data-hx-trigger" not in html.split('id="execution-live"')[1].split(">")[0]
    assert "/cancel" not in html and "/retry" not in html  # final, and a viewer


def test_the_timeline_says_each_next_try_as_a_short_duration(viewer: FlaskClient) -> None:
    def tried(attempt: int, delay: float) -> dict:
        start = f"2026-01-01T00:00:{attempt * 10:02d}+00:00"
        return {"run_id": f"r{attempt}", "attempt": attempt, "status": "retry",
                "started_at": start, "completed_at": start,
                "retry_delay_seconds": delay}  # fmt: skip

    attempts = [tried(0, 1.949682071169938), tried(1, 95.2)]
    execution = factories.execution(created_at=BASE, status=TaskStatus.RETRY, attempts=attempts)
    db.session.commit()
    html = viewer.get(f"/tasks/executions/{execution.task_id}/").text
    assert "next try in 1.9 s" in html and "next try in 1 min 35 s" in html
    assert "1.949" not in html


def test_detail_of_a_failure_with_links(operator: tuple[FlaskClient, str]) -> None:
    client, _csrf = operator
    original = factories.execution(
        created_at=BASE, status=TaskStatus.FAILURE, error_message="first failure"
    )
    failed = factories.execution(
        created_at=BASE,
        status=TaskStatus.FAILURE,
        error_message="ValueError: bad feed",
        traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: bad feed',
        retry_of=original.task_id,
        parent_id=str(uuid.uuid4()),
    )
    retry = factories.execution(created_at=BASE, status=TaskStatus.PENDING, retry_of=failed.task_id)
    child = factories.execution(
        created_at=BASE, status=TaskStatus.SUCCESS, root_id=failed.task_id, task_name="child.task"
    )
    db.session.commit()
    html = client.get(f"/tasks/executions/{failed.task_id}/").text
    assert "ValueError: bad feed" in html and "Traceback (most recent call last)" in html
    assert f'href="/tasks/executions/{original.task_id}/"' in html  # retry of
    assert f'href="/tasks/executions/{retry.task_id}/"' in html  # retried by
    assert f'href="/tasks/executions/{child.task_id}/"' in html and "child.task" in html
    assert failed.parent_id in html and "(not recorded)" in html
    assert f'action="/tasks/executions/{failed.task_id}/retry"' in html
    assert f'action="/tasks/executions/{failed.task_id}/cancel"' not in html
    assert 'name="csrf_token"' in html.split('id="execution-live"')[1]


def test_running_detail_polls_until_final(viewer: FlaskClient) -> None:
    running = factories.execution(
        created_at=BASE, status=TaskStatus.STARTED, started_at=BASE, worker="celery@w2"
    )
    db.session.commit()
    url = f"/tasks/executions/{running.task_id}/"
    page = viewer.get(url).text
    polled = f'data-hx-get="{url}" data-hx-trigger="every 1s" data-hx-swap="outerHTML" data-live'
    assert polled in page
    fragment = viewer.get(url, headers=HTMX)
    assert fragment.text.lstrip().startswith('<div id="execution-live"')
    assert "<html" not in fragment.text and "every 1s" in fragment.text
    again = viewer.get(url, headers=htmx(etag=fragment.headers["ETag"]))
    assert again.status_code == 304
    running.status = TaskStatus.SUCCESS
    running.completed_at = BASE + timedelta(seconds=2)
    db.session.commit()
    final = viewer.get(url, headers=htmx(etag=fragment.headers["ETag"]))
    assert final.status_code == 200
    assert "data-hx-trigger" not in final.text and "data-live" not in final.text


def test_operator_retries_and_cancels_from_the_detail(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    running = factories.execution(created_at=BASE, status=TaskStatus.STARTED, started_at=BASE)
    db.session.commit()
    html = client.get(f"/tasks/executions/{running.task_id}/").text
    assert f'action="/tasks/executions/{running.task_id}/cancel"' in html
    assert f'action="/tasks/executions/{running.task_id}/retry"' not in html
    response = client.post(f"/tasks/executions/{running.task_id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tasks/executions/{running.task_id}/"
    assert "the worker terminates the running task" in client.get(response.headers["Location"]).text
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    response = client.post(f"/tasks/executions/{failed.task_id}/retry", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert "Retry sent as the new execution" in client.get(response.headers["Location"]).text
    done = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    db.session.commit()
    response = client.post(f"/tasks/executions/{done.task_id}/retry", data={"csrf_token": csrf})
    page = client.get(response.headers["Location"]).text
    assert "Only failed, revoked or lost executions can be retried" in page
    missing = client.post(f"/tasks/executions/{uuid.uuid4()}/retry", data={"csrf_token": csrf})
    assert missing.status_code == 404


def test_cancelling_a_pending_execution_shows_the_request_at_once(
    operator: tuple[FlaskClient, str],
) -> None:
    client, csrf = operator
    pending = factories.execution(created_at=BASE, status=TaskStatus.PENDING)
    db.session.commit()
    response = client.post(f"/tasks/executions/{pending.task_id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    assert "it shows as revoked once a worker drops it" in page
    assert "cancel requested" in page and "by operator, " in page
    assert f'action="/tasks/executions/{pending.task_id}/cancel"' not in page  # asked already
    db.session.expire_all()
    row = db.session.get(TaskExecution, pending.id)
    assert row.status == TaskStatus.PENDING and row.cancel_requested_by == "operator"
    assert row.cancel_requested_at is not None
    entry = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "execution.cancel", AuditEntry.target_id == pending.task_id
        )
    )
    assert entry.actor_name == "operator" and entry.details == {"terminate": False}
    assert "cancel requested" in client.get("/tasks/executions/").text  # the list says so too
    again = client.post(f"/tasks/executions/{pending.task_id}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 303  # still not final: the request is sent again, harmlessly


def test_a_finished_execution_is_never_marked_cancel_requested(
    operator: tuple[FlaskClient, str],
) -> None:
    client, csrf = operator
    done = factories.execution(created_at=BASE, status=TaskStatus.SUCCESS)
    db.session.commit()
    response = client.post(f"/tasks/executions/{done.task_id}/cancel", data={"csrf_token": csrf})
    assert "The execution is already success" in client.get(response.headers["Location"]).text
    db.session.expire_all()
    assert db.session.get(TaskExecution, done.id).cancel_requested_at is None


def test_viewer_cannot_retry_from_the_detail(viewer: FlaskClient) -> None:
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    html = viewer.get(f"/tasks/executions/{failed.task_id}/").text
    assert "/retry" not in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = viewer.post(f"/tasks/executions/{failed.task_id}/retry", data={"csrf_token": csrf})
    assert response.status_code == 403


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 300])
def test_unknown_execution_is_a_404_page(viewer: FlaskClient, task_id: str) -> None:
    response = viewer.get(f"/tasks/executions/{task_id}/")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "No execution with task id" in response.text


def test_detail_links_to_its_schedule(app: Flask, login_as: Callable) -> None:
    from app.models import IntervalUnit, ScheduledTask, ScheduleKind

    schedule = ScheduledTask(
        name="nightly idmc",
        task="data_pipeline.tasks.retrieve_idmc",
        kind=ScheduleKind.INTERVAL,
        interval_every=1,
        interval_unit=IntervalUnit.DAYS,
    )
    db.session.add(schedule)
    db.session.commit()
    execution = factories.execution(created_at=BASE, schedule_id=schedule.id)
    db.session.commit()
    html = app.test_client()
    login_as(html, Role.VIEWER)
    text = html.get(f"/tasks/executions/{execution.task_id}/").text
    assert f'<a href="/tasks/scheduled/{schedule.id}/">nightly idmc</a>' in text


@pytest.mark.parametrize("path", [LIST, "/tasks/executions/export"])
def test_anonymous_goes_to_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]


# --- helpers that keep the pages fast -------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr", "es", "ar"])
def test_when_matches_babel_exactly(app: Flask, language: str) -> None:
    from flask import session
    from flask_babel import format_datetime, refresh

    from app.web.formatting import when

    with app.test_request_context("/"):
        for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
            session["language"], session["timezone"] = language, zone
            refresh()
            for hours in range(0, 24 * 365, 97):  # crosses both DST changes
                moment = BASE + timedelta(hours=hours, minutes=hours % 60)
                for style in ("short", "medium", "long", "full"):
                    assert when(moment, style) == format_datetime(moment, style)


def test_prefix_range_holds_every_match() -> None:
    from app.services.executions import _prefix_range

    ids = [str(uuid.uuid4()) for _ in range(2000)]
    for source in ids[:200]:
        for length in (1, 5, 8, 9, 10, 13):
            prefix = source[:length]
            low, high = _prefix_range(prefix)
            assert all(low <= i < high for i in ids if i.startswith(prefix)), prefix
    assert _prefix_range("abc%") is None and _prefix_range("---") is None
    assert _prefix_range("3f9") == ("3f9", "3fa") and _prefix_range("0f-") == ("0f", "0g")


def test_code_values_are_escaped_left_to_right_isolated(app: Flask) -> None:
    from app.web.formatting import code

    assert str(code("0 6 * * *")) == '<code class="ltr" dir="ltr">0 6 * * *</code>'
    assert str(code("<b>", "pre", "traceback", title='a"b')) == (
        '<pre class="traceback ltr" dir="ltr" title="a&#34;b">&lt;b&gt;</pre>'
    )
    assert str(code(None, "bdi")) == '<bdi class="ltr" dir="ltr"></bdi>'
    with pytest.raises(ValueError, match="not 'script'"):
        code("x", "script")
    # a scrolling block is a named region a keyboard can reach
    assert str(code("{}", "pre", "json", label='"args"')) == (
        '<pre class="json ltr" dir="ltr" tabindex="0" role="region" aria-label="&#34;args&#34;">'
        "{}</pre>"
    )
    with pytest.raises(ValueError, match="only a pre scrolls"):
        code("x", label="x")


def test_quoted_values_in_a_message_are_isolated_left_to_right(app: Flask) -> None:
    from app.web.formatting import isolate_quoted

    assert str(isolate_quoted("'*/5 * * * *' is not <valid>")) == (
        '<bdi class="ltr" dir="ltr">&#39;*/5 * * * *&#39;</bdi> is not &lt;valid&gt;'
    )
    assert str(isolate_quoted('Unknown task "a.b"; no quote')) == (
        'Unknown task <bdi class="ltr" dir="ltr">&#34;a.b&#34;</bdi>; no quote'
    )
    assert str(isolate_quoted(None)) == ""


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("app.tracking.policies.DataValidationError: bad\nmore", "DataValidationError: bad"),
        ("urllib.error.URLError: <urlopen error x>", "URLError: <urlopen error x>"),
        ("KeyError: 'a.b'", "KeyError: 'a.b'"),
        ("a.b.Stopped", "Stopped"),
        ("see a.b.C: no", "see a.b.C: no"),
        ("", ""),
        (None, ""),
        ("\n\n  ", ""),
    ],
)
def test_short_error_names_the_exception_by_its_short_name(message, shown) -> None:
    from app.web.formatting import short_error

    assert short_error(message) == shown


def test_error_column_shows_the_exception_type_and_message_start(viewer: FlaskClient) -> None:
    factories.execution(
        created_at=BASE,
        status=TaskStatus.FAILURE,
        error_message="app.tracking.policies.DataValidationError: x",
    )
    db.session.commit()
    html = viewer.get("/tasks/executions/").text
    assert '<bdi class="ltr" dir="ltr">DataValidationError: x</bdi>' in html


def test_bulk_retry_links_each_new_execution(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    failed = factories.execution(created_at=BASE, status=TaskStatus.FAILURE)
    db.session.commit()
    response = client.post(
        "/tasks/executions/retry", data={"csrf_token": csrf, "task_ids": [failed.task_id]}
    )
    new_id = re.search(r'as <a href="/tasks/executions/([0-9a-f-]{36})/">', response.text)
    assert new_id, response.text
