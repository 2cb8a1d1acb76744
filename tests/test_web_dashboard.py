"""The dashboard: its page and polled fragments, figures from the roll-ups, conditional answers,
permissions, and the quick actions (run a schedule now, retry the failures of the last hour)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth.access import requires
from app.extensions import db
from app.models import (
    AuditEntry,
    Role,
    RunKind,
    ScheduleRun,
    TaskExecution,
    TaskStatus,
)
from app.models.types import utcnow
from app.monitoring import failure_rates
from app.monitoring.rollups import add_counts, bucket_of
from app.scheduler.service import create_schedule
from app.services.statistics import window_start
from app.tracking.apply import apply_batch
from tests import factories
from tests.support import HTMX, csrf_token_in, htmx

FRAGMENTS = {
    "metrics": "/tasks/dashboard/metrics",
    "trends": "/tasks/dashboard/trends",
    "health": "/tasks/dashboard/health",
    "recent": "/tasks/dashboard/recent",
}
RUN_NOW = "/tasks/dashboard/run-now"
RETRY = "/tasks/dashboard/retry-failures"
RETRY_ACTION = "execution.retry"


def hourly(hours_ago: int, task_type: str = "retrieval", **counts: Any) -> None:
    """Add roll-up counters ``hours_ago`` hours before the current hour (durations: 1 s each)."""
    hour = window_start(1) - timedelta(hours=hours_ago)
    finished = sum(counts.get(s, 0) for s in ("success", "failure", "revoked"))
    seconds = counts.pop("seconds", 1.0)
    row = {
        "hour": hour,
        "task_type": task_type,
        "task_name": f"demo.{task_type}",
        "success": 0,
        "failure": 0,
        "revoked": 0,
        "duration_count": finished,
        "duration_sum": finished * seconds,
        **{f"le_{i:02d}": 0 for i in range(12)},
        **counts,
    }
    row[bucket_of(seconds)] += finished
    add_counts([row])
    db.session.commit()


def failed(minutes_ago: float, **values: Any) -> TaskExecution:
    """A retrieval that failed ``minutes_ago`` after running 5 s (the test commits)."""
    done = utcnow() - timedelta(minutes=minutes_ago)
    return factories.execution(
        status=TaskStatus.FAILURE,
        started_at=done - timedelta(seconds=5),
        completed_at=done,
        **values,
    )


def text_of(html: str) -> str:
    """The visible text, tags removed and spaces collapsed, for content checks."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable) -> FlaskClient:
    login_as(client, Role.VIEWER)
    return client


@pytest.fixture
def operator(client: FlaskClient, login_as: Callable) -> tuple[FlaskClient, str]:
    return client, login_as(client, Role.OPERATOR)


# --- page, fragments and permissions ---------------------------------------------------------


@pytest.mark.parametrize("url", ["/tasks/", *FRAGMENTS.values()])
def test_anonymous_is_sent_to_login(client: FlaskClient, users: dict, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/tasks/login/?next=")


def test_viewer_sees_every_panel_but_no_action_form(viewer: FlaskClient) -> None:
    page = viewer.get("/tasks/")
    assert page.status_code == 200 and "<html" in page.text
    for name, url in FRAGMENTS.items():
        polled = re.search(rf'<section[^>]*id="dashboard-{name}"[^>]*>', page.text)
        assert polled, name
        tag = polled.group(0)
        assert f'data-hx-get="{url}"' in tag and 'data-hx-trigger="every 30s"' in tag
        assert 'data-hx-swap="outerHTML"' in tag and "data-live" in tag
    assert "<svg" in page.text and "Quick actions" not in page.text
    assert RUN_NOW not in page.text and RETRY not in page.text
    assert 'style="' not in page.text and "<script>" not in page.text


def test_empty_panels_say_what_to_do_next(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    page = client.get("/tasks/").text
    enable = 'Enable or create one on the <a href="/tasks/scheduled/">Scheduled</a> page.'
    assert page.count("No schedule is enabled.") == 2 and page.count(enable) == 2
    assert "use Run now on a schedule" in page
    assert "celery -A wsgi:celery worker" in page  # no worker: how to start one
    assert "Check that a worker and the recorder are running" in page


def test_operator_sees_the_action_forms_with_enabled_schedules(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    create_schedule(
        name="nightly check",
        task="task_monitoring.tasks.health_check",
        kind="crontab",
        crontab="0 2 * * *",
    )
    create_schedule(
        name="paused one",
        task="task_monitoring.tasks.health_check",
        kind="crontab",
        crontab="0 3 * * *",
        enabled=False,
    )
    db.session.commit()
    page = client.get("/tasks/").text
    assert "Quick actions" in page
    assert f'action="{RUN_NOW}"' in page and f'action="{RETRY}"' in page
    assert ">nightly check</option>" in page and "paused one" not in page
    assert page.count('name="csrf_token"') >= 2


@pytest.mark.parametrize("name", FRAGMENTS)
def test_fragment_alone_with_etag_and_304(viewer: FlaskClient, name: str) -> None:
    first = viewer.get(FRAGMENTS[name], headers=HTMX)
    assert first.status_code == 200
    assert first.text.lstrip().startswith("<section") and "<html" not in first.text
    assert f'id="dashboard-{name}"' in first.text
    assert 'name="csrf_token"' not in first.text  # a token would change the ETag every time
    etag = first.headers["ETag"]
    assert "HX-Request" in first.headers["Vary"]
    again = viewer.get(FRAGMENTS[name], headers=htmx(etag=etag))
    assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("metrics", lambda: hourly(0, success=3)),
        ("trends", lambda: hourly(30, failure=2)),
        ("health", lambda: factories.alert(kind="failure", severity="error", title="x")),
        ("recent", lambda: factories.execution()),
    ],
)
def test_fragment_changes_its_etag_when_its_data_changes(
    viewer: FlaskClient, name: str, change: Callable[[], None]
) -> None:
    etag = viewer.get(FRAGMENTS[name]).headers["ETag"]
    assert viewer.get(FRAGMENTS[name], headers={"If-None-Match": etag}).status_code == 304
    change()
    db.session.commit()
    response = viewer.get(FRAGMENTS[name], headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] != etag


# --- figures ---------------------------------------------------------------------------------


def test_metrics_count_the_last_24_hours_and_what_runs_now(viewer: FlaskClient) -> None:
    hourly(0, success=30, failure=4, revoked=1)
    hourly(5, "processing", success=7, failure=1)
    hourly(30, success=500)  # older than 24 hours: not in these figures
    for _ in range(3):
        factories.execution(status=TaskStatus.STARTED, started_at=utcnow())
    for _ in range(2):
        factories.execution(status=TaskStatus.PENDING)
    factories.execution(status=TaskStatus.RETRY)
    db.session.commit()
    text = text_of(viewer.get(FRAGMENTS["metrics"]).text)
    assert "Finished in the last 24 hours 43" in text
    assert "Success rate: 86.0%" in text  # 37 of 43
    assert "success last 24 hours 37" in text
    assert "failure last 24 hours 5" in text and "revoked last 24 hours 1" in text
    assert "Running now 3" in text and "Waiting: 2 · retrying: 1" in text
    assert "data_retrieval 0" in text  # every queue listed with its depth
    assert "Live workers 0" in text


def test_metrics_show_queue_depths_and_live_workers(
    viewer: FlaskClient, redis_client: redis.Redis
) -> None:
    import json
    import time

    from app.tracking.heartbeats import beat_once

    redis_client.lpush("data_processing", "m1", "m2", "m3")
    info = {
        "hostname": "celery@box1",
        "queues": ["data_processing"],
        "concurrency": 4,
        "active": 2,
        "last_seen": time.time(),
    }
    beat_once(redis_client, info)
    text = text_of(viewer.get(FRAGMENTS["metrics"]).text)
    assert "data_processing 3" in text and "Messages waiting: 3" in text
    assert "celery@box1 data_processing 2 of 4" in text and "Live workers 1" in text
    assert json.loads(redis_client.get("ewas:worker:celery@box1"))["active"] == 2


def test_running_now_stops_counting_at_its_bound(
    viewer: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import dashboard

    monkeypatch.setattr(dashboard, "COUNT_CAP", 2)
    for _ in range(3):
        factories.execution(status=TaskStatus.STARTED, started_at=utcnow())
    db.session.commit()
    assert "Running now 2+" in text_of(viewer.get(FRAGMENTS["metrics"]).text)


def test_trends_draw_hourly_charts_with_tooltips_and_duration_table(viewer: FlaskClient) -> None:
    hourly(2, success=9, failure=1, seconds=0.4)
    hourly(50, "processing", success=4, seconds=20.0)
    hourly(24 * 8, success=1000)  # beyond 7 days: not drawn
    html = viewer.get(FRAGMENTS["trends"]).text
    assert html.count("<svg") == 2
    bars = re.findall(r'<rect class="series-0"[^>]*><title>([^<]*)</title>', html)
    assert len(bars) == 7 * 24
    assert any("10 executions (9 success, 1 failure, 0 revoked)" in b for b in bars)
    assert any("4 executions (4 success, 0 failure, 0 revoked)" in b for b in bars)
    assert sum(1 for b in bars if ": 0 executions" in b) == 7 * 24 - 2
    dots = re.findall(r"<circle[^>]*><title>([^<]*)</title>", html)
    assert len(dots) == 2  # hours without executions are gaps in the line
    assert any("90.0% success (10 executions)" in d for d in dots)
    assert "100%" in html  # the rate axis is fixed at 0-100 %
    text = text_of(html)
    assert "Executions per hour, last 7 days (14 in all)" in text
    assert "processing 4 100.0% 20.0 s" in text
    # counters without their executions (as after a retention purge): the p95 is an estimate
    assert re.search(r"retrieval 10 90\.0% 400 ms ≈ \d+ ms", text)


def test_trends_show_exact_durations_of_single_executions_and_mark_estimates(
    app: Flask, viewer: FlaskClient
) -> None:
    """One execution each of 25, 77 and 30 ms: the table reads them, not a bucket's 95 ms."""
    done = utcnow() - timedelta(minutes=5)
    for task_type, seconds in (("retrieval", 0.025), ("processing", 0.077), ("aggregation", 0.03)):
        task_id = str(uuid.uuid4())
        apply_batch(
            [
                {"task_id": task_id, "kind": "published", "ts": done.timestamp() - 1,
                 "attempt": 1, "fields": {"task_name": f"demo.{task_type}",
                                          "task_type": task_type}},
                {"task_id": task_id, "kind": "started", "ts": done.timestamp(), "attempt": 1},
                {"task_id": task_id, "kind": "succeeded", "ts": done.timestamp() + seconds,
                 "attempt": 1},
            ]
        )  # fmt: skip
    db.session.commit()
    text = text_of(viewer.get(FRAGMENTS["trends"]).text)
    assert "aggregation 1 100.0% 30 ms 30 ms" in text
    assert "processing 1 100.0% 77 ms 77 ms" in text
    assert "retrieval 1 100.0% 25 ms 25 ms" in text
    assert "≈" not in text
    app.config["STATS_EXACT_PERCENTILE_MAX"] = 0
    html = viewer.get(FRAGMENTS["trends"]).text
    assert re.search(r"processing 1 100\.0% 77 ms ≈ \d+ ms", text_of(html))
    assert "Estimated from the duration histogram" in html


def test_trend_labels_follow_the_language_and_timezone(viewer: FlaskClient) -> None:
    hourly(1, success=1234)
    csrf = csrf_token_in(viewer.get("/tasks/").text)
    viewer.post(
        "/tasks/preferences",
        data={"language": "fr", "timezone": "Asia/Kolkata", "csrf_token": csrf},
    )
    html = viewer.get(FRAGMENTS["trends"]).text
    tooltip = re.search(r"<title>([^<]*1\u202f234 [^<]*)</title>", html)
    assert tooltip, "French digit grouping"
    assert ":30" in tooltip.group(1)  # hours start at :30 in UTC+5:30
    assert re.search(r"(lun|mar|mer|jeu|ven|sam|dim)\.", tooltip.group(1))  # French day names


def test_health_reports_each_part_and_error_rate_warnings(
    viewer: FlaskClient, redis_client: redis.Redis
) -> None:
    hourly(1, "retrieval", success=10, failure=20)  # 67 % failed: warned
    hourly(1, "processing", success=29, failure=1)  # 3 %: fine
    hourly(2, "aggregation", failure=3)  # too few to judge
    for title in ("a", "b"):
        factories.alert(kind="failure", severity="error", title=title)
    factories.alert(kind="failure", severity="error", title="c", acknowledged_at=utcnow())
    db.session.commit()
    text = text_of(viewer.get(FRAGMENTS["health"]).text)
    assert "Redis up" in text and "Database up" in text
    assert "Scheduler (beat) no active beat" in text
    assert "Recorder keeping up" in text
    assert "Workers none live" in text
    assert "Open alerts 2 open" in text
    assert "retrieval 20 of 30 66.7%" in text
    assert "processing" not in text  # judged, under the threshold
    assert "Not judged, fewer than 10 executions: aggregation 3 of 3 failed" in text
    redis_client.set("ewas:sched:lock", "1:token", px=10_000)
    # A leading beat whose projection is not rebuilt yet (an emptied Redis) sends nothing.
    text = text_of(viewer.get(FRAGMENTS["health"]).text)
    assert "Scheduler (beat) active, rebuilding its schedule store" in text
    from app.scheduler.service import sync_all

    sync_all()
    text = text_of(viewer.get(FRAGMENTS["health"]).text)
    assert "Scheduler (beat) active" in text and "rebuilding" not in text


def test_error_rate_panel_says_how_many_executions_a_type_needs(viewer: FlaskClient) -> None:
    hourly(1, "retrieval", failure=4)  # 0% success, but too few to judge
    text = text_of(viewer.get(FRAGMENTS["health"]).text)
    assert "No task type with at least 10 executions failed more than 25.0% of them" in text
    assert "Not judged, fewer than 10 executions: retrieval 4 of 4 failed" in text


def test_judge_splits_warned_and_too_few_types() -> None:
    judged = failure_rates.judge(
        {"b": (5, 10), "a": (9, 9), "c": (1, 10), None: (2, 2), "idle": (0, 0)}, 0.25, 10
    )
    assert [w["task_type"] for w in judged["warnings"]] == ["b"]
    assert [(e["task_type"], e["rate"]) for e in judged["too_few"]] == [(None, 1.0), ("a", 1.0)]
    assert failure_rates.judge({"b": (5, 10)}, 0.5, 10)["warnings"] == []  # "more than"


def test_health_links_open_alerts_to_the_alerts_page(viewer: FlaskClient) -> None:
    assert 'href="/tasks/alerts/"' in viewer.get(FRAGMENTS["health"]).text


def test_panels_survive_redis_being_down(
    make_app: Callable[..., Flask], login_as: Callable, users: dict
) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    with app.app_context():
        login_as(client, Role.VIEWER)
        metrics = text_of(client.get(FRAGMENTS["metrics"]).text)
        assert "Queue depths are unknown: Redis does not answer." in metrics
        health = text_of(client.get(FRAGMENTS["health"]).text)
        assert "Redis down" in health and "Database up" in health
        assert client.get("/tasks/").status_code == 200


def test_recent_executions_newest_first(viewer: FlaskClient) -> None:
    now = utcnow()
    factories.execution(task_name="demo.older", created_at=now - timedelta(minutes=5))
    failed(1, task_name="demo.newer", created_at=now)
    db.session.commit()
    html = viewer.get(FRAGMENTS["recent"]).text
    assert html.index("demo.newer") < html.index("demo.older")
    assert "boom" in html and "status-failure" in html


# --- quick actions ---------------------------------------------------------------------------


def test_run_now_sends_the_schedule_and_says_so(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    client, csrf = operator
    schedule = create_schedule(
        name="hourly check",
        task="task_monitoring.tasks.health_check",
        kind="interval",
        interval_every=1,
        interval_unit="hours",
    )
    db.session.commit()
    response = client.post(RUN_NOW, data={"schedule_id": schedule.id, "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/"
    run = db.session.scalar(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id))
    assert run.kind == RunKind.MANUAL and run.sent_at is not None and run.error is None
    assert redis_client.llen("monitoring") == 1
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "schedule.run"))
    assert entry.actor_name == "operator" and entry.details["task_id"] == run.task_id
    page = client.get("/tasks/").text
    assert "hourly check was sent." in page and "flash-success" in page


def test_run_now_links_to_the_execution_when_its_page_exists(
    make_app: Callable[..., Flask], login_as: Callable, users: dict
) -> None:
    app = make_app()

    @requires(Role.VIEWER)
    def detail(task_id: str) -> str:
        return task_id

    app.add_url_rule("/tasks/executions/<task_id>/", endpoint="web.execution", view_func=detail)
    client = app.test_client()
    with app.app_context():
        csrf = login_as(client, Role.OPERATOR)
        schedule = create_schedule(
            name="linked",
            task="task_monitoring.tasks.health_check",
            kind="crontab",
            crontab="0 1 * * *",
        )
        db.session.commit()
        client.post(RUN_NOW, data={"schedule_id": schedule.id, "csrf_token": csrf})
        run = db.session.scalar(select(ScheduleRun))
        page = client.get("/tasks/").text
        assert f'<a href="/tasks/executions/{run.task_id}/">Follow its execution</a>' in page


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Choose a schedule to run."),
        ("", "Choose a schedule to run."),
        ("abc", "Choose a schedule to run."),
        ("-1", "Choose a schedule to run."),
        ("99999999999999999999", "Choose a schedule to run."),
        ("424242", "No schedule 424242: it may have been deleted."),
    ],
)
def test_run_now_refuses_a_bad_schedule_with_a_message(
    operator: tuple[FlaskClient, str], value: str | None, message: str
) -> None:
    client, csrf = operator
    data = {"csrf_token": csrf} if value is None else {"schedule_id": value, "csrf_token": csrf}
    response = client.post(RUN_NOW, data=data)
    assert response.status_code == 303
    page = client.get("/tasks/").text
    assert message in page and "flash-error" in page
    assert db.session.scalar(select(ScheduleRun)) is None


def test_retry_sends_only_the_last_hours_unretried_failures(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    client, csrf = operator
    recent = failed(10)
    failed(90)  # more than an hour ago
    already = failed(20)
    factories.execution(retry_of=already.task_id)  # retried before
    factories.execution(status=TaskStatus.SUCCESS, started_at=utcnow(), completed_at=utcnow())
    cut = failed(30, replayable=False)
    db.session.commit()
    response = client.post(RETRY, data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/"
    assert redis_client.llen("data_retrieval") == 1
    audits = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "execution.retry").order_by(AuditEntry.id)
    ).all()
    assert [(a.target_id, a.outcome) for a in audits] == [
        (cut.task_id, "conflict"),
        (recent.task_id, "ok"),
    ]
    assert all(a.actor_name == "operator" for a in audits)
    page = client.get("/tasks/").text
    text = text_of(page)
    new_id = audits[1].details["new_task_id"]
    assert f"1 failed execution of the last hour was sent again: {new_id[:8]}" in text
    assert f'<a href="/tasks/executions/{new_id}/"><code class="ltr" dir="ltr">' in page
    assert "1 could not be re-run exactly" in text
    # Before the recorder stores the new execution, the audit trail prevents a second send.
    client.post(RETRY, data={"csrf_token": csrf})
    assert redis_client.llen("data_retrieval") == 1
    assert "No failure of the last hour is waiting for a retry." in client.get("/tasks/").text


def test_retry_is_bounded_and_says_more_remain(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web import dashboard

    client, csrf = operator
    for minutes in (5, 6, 7):
        failed(minutes)
    db.session.commit()
    original = dashboard.retry_recent_failures
    monkeypatch.setattr(dashboard, "retry_recent_failures", lambda hours: original(hours, 2))
    client.post(RETRY, data={"csrf_token": csrf})
    assert redis_client.llen("data_retrieval") == 2
    assert "More failures remain" in client.get("/tasks/").text
    client.post(RETRY, data={"csrf_token": csrf})
    assert redis_client.llen("data_retrieval") == 3


def test_retried_failures_not_recorded_yet_never_hold_back_the_others(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web import dashboard

    client, csrf = operator
    for minutes in (5, 6, 7, 8, 9):
        failed(minutes)
    db.session.commit()
    original = dashboard.retry_recent_failures
    monkeypatch.setattr(dashboard, "retry_recent_failures", lambda hours: original(hours, 2))
    for sent in (2, 4):  # the first rounds' retries are only audited (no recorder runs here)
        client.post(RETRY, data={"csrf_token": csrf})
        assert redis_client.llen("data_retrieval") == sent
        assert "More failures remain" in client.get("/tasks/").text
    client.post(RETRY, data={"csrf_token": csrf})
    assert redis_client.llen("data_retrieval") == 5
    assert "More failures remain" not in client.get("/tasks/").text


@pytest.mark.parametrize("url", [RUN_NOW, RETRY])
def test_actions_need_an_operator_and_a_csrf_token(
    app: Flask, login_as: Callable, url: str
) -> None:
    client = app.test_client()
    csrf = login_as(client, Role.VIEWER)
    assert client.post(url, data={"csrf_token": csrf}).status_code == 403
    client = app.test_client()
    csrf = login_as(client, Role.OPERATOR)
    assert client.post(url, data={}).status_code == 400
    assert client.post(url, data={"csrf_token": csrf}).status_code == 303


def test_retry_stops_with_a_message_when_the_broker_is_down(
    make_app: Callable[..., Flask], login_as: Callable, users: dict
) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    with app.app_context():
        csrf = login_as(client, Role.OPERATOR)
        failed(5)
        db.session.commit()
        response = client.post(RETRY, data={"csrf_token": csrf})
        assert response.status_code == 303
        assert "The broker stopped answering" in client.get("/tasks/").text
        audits = select(AuditEntry).where(AuditEntry.action == RETRY_ACTION)
        assert db.session.scalar(audits) is None


def test_retry_refuses_an_unroutable_queue_and_never_resends(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    client, csrf = operator
    stray = failed(5, queue="no_such_queue")
    good = failed(6)
    db.session.commit()
    assert client.post(RETRY, data={"csrf_token": csrf}).status_code == 303
    assert "1 was not sent: its queue is not configured." in text_of(client.get("/tasks/").text)
    for _ in range(2):  # later clicks send neither again
        assert client.post(RETRY, data={"csrf_token": csrf}).status_code == 303
    assert redis_client.llen("data_retrieval") == 1
    assert not redis_client.exists("no_such_queue")
    audits = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "execution.retry"))
    assert sorted((a.target_id, a.outcome) for a in audits) == sorted(
        [(stray.task_id, "unroutable"), (good.task_id, "ok")]
    )
