"""The queues page: live depths of messages really queued in Redis, consumers from heartbeats,
the 7-day trend drawn from queue snapshots, and the snapshot task that writes and prunes them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, inspect, select

from app.extensions import db
from app.models import QueueSnapshot, Role
from app.models.types import utcnow
from app.monitoring.queue_history import hourly_maxima
from app.monitoring.queues import queue_names
from app.tracking.heartbeats import beat_once
from tests import factories
from tests.support import HTMX, htmx, wait_for


def push(app: Flask, queue: str, count: int) -> list[str]:
    """Publish ``count`` real messages to ``queue`` (no worker consumes them)."""
    celery = app.extensions["celery"]
    return [celery.send_task("tests.add", args=[1, 2], queue=queue).id for _ in range(count)]


def row_of(html: str, queue: str) -> str:
    start = html.index(f'<td><code class="ltr" dir="ltr">{queue}</code></td>')
    return html[start : html.index("</tr>", start)]


def snapshot(queue: str, hours_ago: int, depth: int, latency: float | None = None) -> None:
    """A snapshot ``hours_ago`` whole hours before the current one, 10 minutes into its hour."""
    hour = utcnow().replace(minute=10, second=0, microsecond=0)
    taken_at = hour - timedelta(hours=hours_ago)
    db.session.add(
        QueueSnapshot(queue=queue, taken_at=taken_at, depth=depth, latency_seconds=latency)
    )


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable) -> str:
    return login_as(client, Role.VIEWER)


def test_depth_latency_and_consumers_of_real_messages(
    app: Flask, client: FlaskClient, viewer: str, redis_client: redis.Redis
) -> None:
    oldest, *_ = push(app, "aggregation", 3)
    push(app, "maintenance", 1)
    created_at = utcnow() - timedelta(minutes=5)
    factories.execution(task_id=oldest, task_name="tests.add", created_at=created_at)
    db.session.commit()
    beat_once(
        redis_client,
        {"hostname": "w1@host", "host": "h", "pid": 1, "queues": ["maintenance", "default"],
         "concurrency": 1, "active": 0, "last_seen": time.time()},
    )  # fmt: skip

    html = client.get("/tasks/queues/").text
    waited = (utcnow() - created_at).total_seconds()  # 5 min and this test's own seconds
    aggregation = row_of(html, "aggregation")
    assert '<td class="num">3</td>' in aggregation
    minutes, seconds = map(int, re.search(r"(\d+) min (\d+) s", aggregation).groups())
    assert 300 <= minutes * 60 + seconds <= waited + 1  # shown rounded to the second
    assert '<span class="status status-error">no consumer</span>' in aggregation
    maintenance = row_of(html, "maintenance")
    assert '<td class="num">1</td>' in maintenance and "1 worker" in maintenance
    assert "w1@host" in maintenance and 'status-pending">waiting<' in maintenance
    default = row_of(html, "default")
    assert '<td class="num">0</td>' in default and 'status-ok">empty<' in default
    assert "w1@host" in default
    for name in queue_names():
        # dead_letter included
        assert f'<td><code class="ltr" dir="ltr">{name}</code></td>' in html


def test_a_deep_queue_is_a_backlog(
    make_app: Callable, users: dict, login_as: Callable, redis_client: redis.Redis
) -> None:
    app = make_app(QUEUE_DEPTH_THRESHOLD=2)
    with app.app_context():
        client = app.test_client()
        login_as(client, Role.VIEWER)
        push(app, "default", 2)
        beat_once(
            redis_client,
            {"hostname": "w1@host", "queues": ["default"], "pid": 1, "last_seen": time.time()},
        )
        html = client.get("/tasks/queues/").text
    assert 'status-warning">backlog<' in row_of(html, "default")


def test_fragment_polls_and_answers_304(
    app: Flask, client: FlaskClient, viewer: str, redis_client: redis.Redis
) -> None:
    page = client.get("/tasks/queues/")
    assert page.status_code == 200 and "<html" in page.text and "<svg" in page.text
    fragment = client.get("/tasks/queues/", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<svg" not in fragment.text
    assert 'id="queue-depths" data-live' in fragment.text
    assert 'data-hx-trigger="every 30s"' in fragment.text
    assert "HX-Request" in fragment.headers["Vary"]
    etag = fragment.headers["ETag"]
    again = client.get("/tasks/queues/", headers=htmx(etag=etag))
    assert again.status_code == 304 and again.data == b""
    push(app, "default", 1)
    changed = client.get("/tasks/queues/", headers=htmx(etag=etag))
    assert changed.status_code == 200 and '<td class="num">1</td>' in row_of(
        changed.text, "default"
    )


def test_trend_is_drawn_from_snapshots(client: FlaskClient, viewer: str) -> None:
    assert "No snapshots yet" in client.get("/tasks/queues/").text
    snapshot("default", 2, 3)
    snapshot("default", 2, 7, latency=42.0)
    snapshot("default", 30, 12)
    snapshot("default", 24 * 8, 99)  # older than the 7-day window
    snapshot("aggregation", 5, 4)
    db.session.commit()
    html = client.get("/tasks/queues/").text
    assert "No snapshots yet" not in html
    charts = html[html.index("Depth over the last 7 days") :]
    assert charts.count('<svg class="chart bar"') == len(queue_names())
    assert "<title>Hourly maximum depth of default, last 7 days</title>" in charts
    assert ": at most 7 messages, oldest waited 42.0 s</title>" in charts
    assert ": at most 12 messages, oldest waited —</title>" in charts
    assert "at most 3 messages" not in charts and "at most 99" not in charts
    assert "peak 12" in charts and "peak 4" in charts


def test_hourly_maxima_are_bounded_and_aligned(app: Flask) -> None:
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)
    for minutes, depth in [(1, 5), (59, 9), (61, 2)]:  # two in this hour, one in the previous
        db.session.add(
            QueueSnapshot(
                queue="default",
                taken_at=hour + timedelta(minutes=minutes) - timedelta(hours=1),
                depth=depth,
            )
        )
    db.session.commit()
    trend = hourly_maxima(["default", "aggregation"], hours=48, now=now)
    assert len(trend["default"]) == len(trend["aggregation"]) == 48
    assert trend["default"][-1].hour == hour
    assert [p.depth for p in trend["default"][-2:]] == [9, 2]
    assert trend["default"][-2].hour == hour - timedelta(hours=1)
    assert all(p.depth is None for p in trend["aggregation"])


def test_snapshot_task_writes_every_queue_and_prunes_old_rows(
    app: Flask, redis_client: redis.Redis
) -> None:
    from app.tasks.task_monitoring import snapshot_queues

    snapshot("default", 24 * 9, 1)
    snapshot("default", 24 * 7 + 12, 2)  # inside the 8 days kept
    db.session.commit()
    push(app, "data_retrieval", 2)
    result = snapshot_queues()
    assert result["pruned"] == 1 and result["depths"]["data_retrieval"] == 2
    rows = db.session.execute(
        select(QueueSnapshot.queue, QueueSnapshot.depth).where(
            QueueSnapshot.taken_at > utcnow() - timedelta(minutes=1)
        )
    ).all()
    assert dict(rows) == {name: (2 if name == "data_retrieval" else 0) for name in queue_names()}
    assert db.session.scalar(select(func.count()).select_from(QueueSnapshot)) == 1 + len(rows)
    assert snapshot_queues(keep_days=1)["pruned"] == 1


def test_snapshot_task_runs_on_a_real_worker(app: Flask, start_worker: Callable) -> None:
    start_worker(queues="monitoring", concurrency=1)
    app.extensions["celery"].send_task("task_monitoring.tasks.snapshot_queues")

    def written() -> int:
        db.session.rollback()
        return db.session.scalar(select(func.count()).select_from(QueueSnapshot)) or 0

    assert wait_for(written, timeout=30) == len(queue_names())


def test_snapshots_are_indexed_by_queue_and_time(app: Flask) -> None:
    indexes = {
        ix["name"]: ix["column_names"] for ix in inspect(db.engine).get_indexes("queue_snapshots")
    }
    assert indexes["ix_queue_snapshots_queue_taken_at"] == ["queue", "taken_at"]


def test_permissions(client: FlaskClient, login_as: Callable) -> None:
    response = client.get("/tasks/queues/")
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]
    for role in Role:
        login_as(client, role)
        assert client.get("/tasks/queues/").status_code == 200
    assert client.post("/tasks/queues/").status_code == 405


def test_redis_down_is_a_clear_503(make_app: Callable, users: dict, login_as: Callable) -> None:
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    with broken.app_context():
        client = broken.test_client()
        login_as(client, Role.VIEWER)
        response = client.get("/tasks/queues/")
        fragment = client.get("/tasks/queues/", headers=HTMX)
    assert response.status_code == 503 and "Redis is not answering" in response.text
    assert fragment.status_code == 503 and "<html" not in fragment.text


@pytest.mark.parametrize("language", ["en", "fr", "ar"])
def test_chart_texts_match_the_page_filters(app: Flask, language: str) -> None:
    from flask_babel import format_date, format_decimal, get_locale, get_timezone
    from flask_babel import gettext as _

    from app.web.dashboard_charts import hour_names
    from app.web.formatting import duration_formatter
    from app.web.queue_trends import hour_texts

    with app.test_request_context(headers={"Accept-Language": language}):
        fast = duration_formatter("—")
        # the fast number signs are the locale's own (babel's formatting of the same values)
        for seconds, pattern in ((3.0, "#,##0.0"), (42.25, "#,##0.0"), (59.5, "#,##0.0")):
            text = _("%(value)s s", value=format_decimal(seconds, pattern))
            assert fast(seconds) == text, seconds
        assert fast(0.5) == _("%(value)s ms", value=format_decimal(500, "#,##0"))
        assert fast(None) == "—"
        hour = utcnow().replace(minute=0, second=0, microsecond=0)
        labels, tips = hour_texts([hour, hour + timedelta(hours=1)])
        # the dashboard charts' names of an hour: one time format per language
        axis, name = hour_names(get_locale(), str(get_timezone()), hour)
        assert tips[0] == name and labels == [axis, ""]
        assert format_date(hour, "EEE") in axis
