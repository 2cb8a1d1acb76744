"""The alerts page: filters, keyset pages, the polled fragment (ETag/304, kept selection), and
acknowledging one alert or a selection (operator+, audited, in the user's name)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry
from app.models.types import utcnow
from tests import factories
from tests.support import HTMX, htmx


def row_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="alert-(\d+)"', page)]


def test_open_alerts_newest_first_with_their_details(client: FlaskClient, viewer: str) -> None:
    task_id = str(uuid.uuid4())
    old = factories.alert(
        created_at=utcnow() - timedelta(hours=2),
        task_id=task_id,
        task_name="data_pipeline.tasks.retrieve_source",
        message="ConnectionError: refused",
        notified_at=utcnow(),
    )
    new = factories.alert(
        kind="queue_depth",
        severity="error",
        title="Queue data_retrieval holds 900 messages",
        notify_error="webhook: timed out",
    )
    done = factories.alert(acknowledged_at=utcnow(), acknowledged_by="ana", title="Old and handled")
    db.session.commit()
    response = client.get("/tasks/alerts/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = html.unescape(response.text)
    assert row_ids(page) == [new.id, old.id]
    assert '<span class="status status-critical">critical</span>' in page
    assert '<span class="status status-error">error</span>' in page
    assert "queue depth" in page and "critical task failed" in page
    assert "ConnectionError: refused" in page and task_id in page
    assert "Notification failed: webhook: timed out" in page and "not sent" in page
    # A viewer reads: no checkboxes, no acknowledge buttons.
    assert 'type="checkbox"' not in page and "/acknowledge/" not in page
    page = client.get("/tasks/alerts/?state=acknowledged").text
    assert row_ids(page) == [done.id] and "by ana" in page
    assert row_ids(client.get("/tasks/alerts/?state=all").text) == [done.id, new.id, old.id]
    assert row_ids(client.get("/tasks/alerts/?severity=error").text) == [new.id]


def test_alert_times_are_valid_html(client: FlaskClient, viewer: str) -> None:
    alert = factories.alert()
    db.session.commit()
    alert.created_at = datetime(2026, 12, 3, 14, 5, 6, 123456, tzinfo=UTC)
    db.session.commit()
    page = client.get("/tasks/alerts/").text
    # HTML allows three fraction digits at most in <time datetime>; isoformat() writes six.
    assert '<time datetime="2026-12-03T14:05:06.123Z">' in page


def test_task_link_goes_to_the_execution_page_of_its_task(client: FlaskClient, viewer: str) -> None:
    task_id = str(uuid.uuid4())
    linked = factories.alert(task_id=task_id, task_name="x.tasks.y")
    factories.alert(task_name="x.tasks.without_id")  # no task id: nothing to link to
    db.session.commit()
    page = client.get("/tasks/alerts/").text
    link = f'href="/tasks/executions/{task_id}/"><code class="ltr" dir="ltr">x.tasks.y</code></a>'
    assert link in page
    assert f'id="alert-{linked.id}"' in page and "x.tasks.without_id" in page
    assert "x.tasks.without_id</code></a>" not in page


def test_bad_filters_are_a_400(client: FlaskClient, viewer: str) -> None:
    for query in ("state=closed", "severity=fatal", "before=abc", "after=-1", f"before={10**30}"):
        response = client.get(f"/tasks/alerts/?{query}")
        assert response.status_code == 400, query
        assert "error-message" in response.text


def test_keyset_pages_both_ways(client: FlaskClient, viewer: str) -> None:
    alerts = [factories.alert(title=f"alert {i}") for i in range(60)]
    db.session.commit()
    newest_first = [a.id for a in reversed(alerts)]
    first = client.get("/tasks/alerts/").text
    assert row_ids(first) == newest_first[:50]
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1)
    second = client.get(html.unescape(older)).text
    assert row_ids(second) == newest_first[50:]
    assert 'rel="next"' not in second
    newer = re.search(r'rel="prev" href="([^"]+)"', second).group(1)
    assert row_ids(client.get(html.unescape(newer)).text) == newest_first[:50]
    # Later pages do not poll; the first does.
    assert 'data-hx-trigger="every 30s"' in first and 'data-hx-trigger="every 30s"' not in second


def test_polled_fragment_answers_304_until_something_changes(
    client: FlaskClient, operator: str
) -> None:
    alert = factories.alert()
    db.session.commit()
    response = client.get("/tasks/alerts/?severity=critical", headers=HTMX)
    assert response.status_code == 200
    body = response.text
    assert "<html" not in body and body.startswith('<div id="alerts-table"')
    assert 'data-hx-trigger="every 30s"' in body and "data-live" in body
    assert 'data-hx-get="/tasks/alerts/?severity=critical"' in body
    assert "HX-Request" in response.headers["Vary"]
    etag = response.headers["ETag"]
    again = client.get("/tasks/alerts/?severity=critical", headers=htmx(etag=etag))
    assert again.status_code == 304 and again.data == b""
    factories.alert(title="Another one")
    db.session.commit()
    changed = client.get("/tasks/alerts/?severity=critical", headers=htmx(etag=etag))
    assert changed.status_code == 200 and "Another one" in changed.text
    # The selection travels with the poll and comes back checked.
    kept = client.get(f"/tasks/alerts/?severity=critical&id={alert.id}", headers=HTMX).text
    assert f'value="{alert.id}" checked' in kept
    # The full page is a page, with the fragment inside.
    page = client.get("/tasks/alerts/").text
    assert "<html" in page and 'id="alerts-table"' in page


def test_operator_acknowledges_one_alert(client: FlaskClient, operator: str) -> None:
    alert = factories.alert()
    db.session.commit()
    page = client.get("/tasks/alerts/").text
    assert f'formaction="/tasks/alerts/{alert.id}/acknowledge/"' in page
    response = client.post(
        f"/tasks/alerts/{alert.id}/acknowledge/",
        data={"csrf_token": operator, "next": "/tasks/alerts/?severity=critical"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks/alerts/?severity=critical"
    db.session.expire_all()
    assert alert.acknowledged_by == "operator" and alert.acknowledged_at is not None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "alert.acknowledge"))
    assert entry.target_id == str(alert.id) and entry.actor_name == "operator"
    assert "1 alert acknowledged." in client.get("/tasks/alerts/").text
    # Again: nothing changes, and the page says so.
    client.post(f"/tasks/alerts/{alert.id}/acknowledge/", data={"csrf_token": operator})
    assert f"Already acknowledged: #{alert.id}." in client.get("/tasks/alerts/").text


def test_operator_acknowledges_a_selection(client: FlaskClient, operator: str) -> None:
    first, second, untouched = factories.alert(), factories.alert(), factories.alert()
    db.session.commit()
    response = client.post(
        "/tasks/alerts/acknowledge/",
        data={"csrf_token": operator, "id": [str(first.id), str(second.id), "999999", "x"]},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/tasks/alerts/"
    page = html.unescape(client.get("/tasks/alerts/").text)
    assert "2 alerts acknowledged." in page and "No such alert: #999999." in page
    assert row_ids(page) == [untouched.id]
    db.session.expire_all()
    assert {first.acknowledged_by, second.acknowledged_by} == {"operator"}
    assert untouched.acknowledged_at is None

    response = client.post("/tasks/alerts/acknowledge/", data={"csrf_token": operator})
    assert response.status_code == 303
    assert "Select at least one alert." in client.get("/tasks/alerts/").text


def test_unsafe_next_goes_back_to_the_alerts(client: FlaskClient, operator: str) -> None:
    alert = factories.alert()
    db.session.commit()
    response = client.post(
        f"/tasks/alerts/{alert.id}/acknowledge/",
        data={"csrf_token": operator, "next": "https://evil.example/"},
    )
    assert response.headers["Location"] == "/tasks/alerts/"


def test_missing_alert_is_404(client: FlaskClient, operator: str) -> None:
    for alert_id in (999999, 10**30):
        response = client.post(
            f"/tasks/alerts/{alert_id}/acknowledge/", data={"csrf_token": operator}
        )
        assert response.status_code == 404


def test_viewer_and_anonymous_cannot_acknowledge(
    client: FlaskClient, viewer: str, app: Flask
) -> None:
    alert = factories.alert()
    db.session.commit()
    response = client.post(f"/tasks/alerts/{alert.id}/acknowledge/", data={"csrf_token": viewer})
    assert response.status_code == 403
    response = client.post(
        "/tasks/alerts/acknowledge/", data={"csrf_token": viewer, "id": str(alert.id)}
    )
    assert response.status_code == 403
    anonymous = app.test_client()
    response = anonymous.get("/tasks/alerts/")
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]
    db.session.expire_all()
    assert alert.acknowledged_at is None


def test_csrf_token_is_required(client: FlaskClient, operator: str) -> None:
    alert = factories.alert()
    db.session.commit()
    response = client.post(f"/tasks/alerts/{alert.id}/acknowledge/")
    assert response.status_code == 400
    db.session.expire_all()
    assert alert.acknowledged_at is None
