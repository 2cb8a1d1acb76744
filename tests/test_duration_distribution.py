"""A task's duration distribution (24 h, 7 days, p95 per day), read from the hourly roll-ups:
percentiles against values computed directly from the executions, exact and estimated, the
API and the page with its SVG charts, and names that are refused."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import TaskExecution, TaskStatus
from app.models.statistics import DURATION_BOUNDS
from app.models.types import utcnow
from app.monitoring import rollups
from app.monitoring.percentiles import nearest_rank
from app.services.duration_distribution import distribution
from app.services.statistics import window_start
from tests import factories

NAME = "data_pipeline.tasks.retrieve_source"
OTHER = "data_pipeline.tasks.process_source"
SECONDS = (0.003, 0.02, 0.07, 0.3, 0.31, 1.2, 4.0, 8.5, 25.0, 70.0, 400.0, 2000.0)
# Hours before now at which executions end: inside 24 h, inside 7 days, and 9 days ago (out).
AGES = (0.5, 3, 20, 30, 50, 75, 100, 130, 150, 160, 9 * 24)


@pytest.fixture
def executions(app: Flask) -> datetime:
    """Executions of NAME (and a few of OTHER) ending over nine days, counted by the roll-ups
    as the recorder would (a recount from the executions themselves); returns the moment."""
    from app.services.task_types import seed_task_types

    seed_task_types()
    now = utcnow()
    statuses = (TaskStatus.SUCCESS, TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.REVOKED)
    for a, age in enumerate(AGES):
        for s, seconds in enumerate(SECONDS):
            ended = now - timedelta(hours=age, minutes=s)
            factories.execution(
                task_name=NAME,
                task_type="retrieval",
                status=statuses[(a + s) % len(statuses)],
                **factories.ran(seconds * (1 + a / 10), ended),
            )
        factories.execution(
            task_name=OTHER,
            task_type="retrieval",
            **factories.ran(9999.0, now - timedelta(hours=age)),
        )
    db.session.commit()
    rollups.rebuild(now - timedelta(days=30))
    db.session.commit()
    return now


def direct(since: datetime, until: datetime | None = None) -> list[TaskExecution]:
    """NAME's final executions that ended in [since, until), read from the table itself."""
    query = select(TaskExecution).where(
        TaskExecution.task_name == NAME,
        TaskExecution.completed_at >= since,
        TaskExecution.status.in_(("success", "failure", "revoked")),
    )
    if until is not None:
        query = query.where(TaskExecution.completed_at < until)
    return list(db.session.scalars(query))


def _expected(rows: list[TaskExecution]) -> dict[str, Any]:
    seconds = [r.duration_seconds for r in rows]
    return {
        "p50_seconds": nearest_rank(seconds, 0.5),
        "p95_seconds": nearest_rank(seconds, 0.95),
        "p99_seconds": nearest_rank(seconds, 0.99),
        "counts": {s: sum(1 for r in rows if r.status == s) for s in rollups.COUNTED},
        "duration_count": len(seconds),
    }


def test_exact_percentiles_and_counts_match_the_executions(executions: datetime) -> None:
    data = distribution(NAME)
    assert [w["window"] for w in data["windows"]] == ["24h", "7d"]
    assert data["windows"][0]["duration_count"] < data["windows"][1]["duration_count"]
    for window, hours in zip(data["windows"], (24, 24 * 7), strict=True):
        rows = direct(window_start(hours))
        expected = _expected(rows)
        assert window["estimate"] is False
        for key, value in expected.items():
            assert window[key] == (pytest.approx(value) if "seconds" in key else value), key
        assert sum(b["count"] for b in window["histogram"]) == len(rows)
        assert len(window["histogram"]) == len(DURATION_BOUNDS) + 1
        assert window["histogram"][-1]["le_seconds"] is None
    # the executions of 9 days ago and of the other task are in neither window
    assert data["windows"][1]["duration_count"] == len(SECONDS) * (len(AGES) - 1)


def test_p95_per_day_matches_each_days_executions(executions: datetime) -> None:
    days = distribution(NAME)["p95_by_day"]
    today = executions.date()
    assert [d["day"] for d in days] == [today - timedelta(days=6 - i) for i in range(7)]
    for day in days:
        since = datetime(day["day"].year, day["day"].month, day["day"].day, tzinfo=UTC)
        rows = direct(since, since + timedelta(days=1))
        assert day["duration_count"] == len(rows)
        expected = nearest_rank([r.duration_seconds for r in rows], 0.95)
        assert day["p95_seconds"] == (pytest.approx(expected) if expected is not None else None)
    assert any(d["duration_count"] for d in days)


def test_estimates_fall_in_the_bucket_of_the_exact_value(app: Flask, executions: datetime) -> None:
    app.config["STATS_EXACT_PERCENTILE_MAX"] = 10  # fewer than the executions: estimate
    week = distribution(NAME)["windows"][1]
    assert week["estimate"] is True
    rows = direct(window_start(24 * 7))
    bounds = (0.0, *DURATION_BOUNDS)
    for key, share in (("p50_seconds", 0.5), ("p95_seconds", 0.95), ("p99_seconds", 0.99)):
        exact = nearest_rank([r.duration_seconds for r in rows], share)
        bucket = rollups.bucket_of(exact)
        index = int(bucket[3:])
        low = bounds[index]
        high = bounds[index + 1] if index + 1 < len(bounds) else low * 2
        assert low <= week[key] <= high, (key, exact, week[key])


def test_a_task_with_nothing_finished_has_an_empty_distribution(app: Flask) -> None:
    data = distribution(NAME)
    for window in data["windows"]:
        assert window["duration_count"] == 0 and window["p95_seconds"] is None
        assert window["estimate"] is False
    assert all(d["p95_seconds"] is None for d in data["p95_by_day"])


def test_api_answers_and_documents_it(
    client: FlaskClient, executions: datetime, api_viewer: dict[str, str]
) -> None:
    answer = client.get(f"/tasks/api/tasks/{NAME}/durations/", headers=api_viewer)
    assert answer.status_code == 200
    day = answer.json["windows"][0]
    assert day["window"] == "24h"
    assert day["p95_seconds"] == pytest.approx(distribution(NAME)["windows"][0]["p95_seconds"])
    assert len(answer.json["p95_by_day"]) == 7
    assert isinstance(date.fromisoformat(answer.json["p95_by_day"][0]["day"]), date)
    for bad in ("no.such.task", "x" * 300, "a%00b", "%E2%80%AE"):
        missing = client.get(f"/tasks/api/tasks/{bad}/durations/", headers=api_viewer)
        assert missing.status_code == 404, bad
        assert missing.json["error"]["code"] == "not_found"
    assert client.get(f"/tasks/api/tasks/{NAME}/durations/").status_code == 401
    spec = client.get("/tasks/api/openapi.json", headers=api_viewer).json
    assert "/tasks/api/tasks/{task_name}/durations/" in spec["paths"]


def test_page_draws_the_histograms_and_the_trend(
    client: FlaskClient, executions: datetime, viewer: str
) -> None:
    page = client.get(f"/tasks/durations/{NAME}/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('<svg class="chart bar"') == 2
    assert html.count('<svg class="chart line"') == 1
    assert len(re.findall(r"<rect class=", html)) >= 10
    assert f'<h1>Execution times of <code class="ltr" dir="ltr">{NAME}</code></h1>' in html
    assert "/tasks/executions/?task_name=" in html
    assert client.get("/tasks/durations/no.such.task/").status_code == 404
    types = client.get("/tasks/types/").get_data(as_text=True)
    assert f'href="/tasks/durations/{NAME}/"' in types


def test_page_of_a_catalogue_task_that_never_ran(client: FlaskClient, viewer: str) -> None:
    page = client.get(f"/tasks/durations/{NAME}/")
    assert page.status_code == 200
    assert "No execution of this task finished in this period." in page.get_data(as_text=True)


@pytest.mark.browser
def test_page_in_a_browser_in_english_and_arabic(
    live_server: str, browser_page: Any, users: Any, executions: datetime
) -> None:
    """The page as a reader sees it: three charts with bars and a line, no console error or
    CSP violation, in English and in Arabic (right to left); screenshots for a reviewer."""
    from tests.conftest import screenshot
    from tests.test_web_browser import Problems, sign_in, use_language

    page = browser_page
    page.problems = Problems(page)
    sign_in(page, live_server)
    for language in ("en", "ar"):
        if language != "en":
            use_language(page, language)
        page.goto(f"{live_server}/tasks/durations/{NAME}/")
        assert page.locator("svg.chart").count() == 3
        assert page.locator("svg.chart.bar rect").count() >= 10
        assert page.locator("svg.chart.line polyline").count() >= 1
        assert page.locator("#window-7d td.num").count() == 7
        screenshot(page, f"task-durations-{language}")
    page.problems.check("on the execution times page")
