"""The dead-letter pages: filters, detail, the polled fragment, and retry now / discard for one
letter, a selection, and everything matching a filter (bounded, confirmed), sent through the
real Redis broker."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role
from app.models.types import utcnow
from tests import factories
from tests.factories import HEALTH, RETRIEVE
from tests.support import HTMX, bearer, htmx


def row_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="dead-letter-(\d+)"', page)]


def page_text(client: FlaskClient, path: str) -> str:
    return html.unescape(client.get(path).text)


def messages_in(client: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_list_and_filters(client: FlaskClient, viewer: str) -> None:
    refused = factories.dead_letter()
    timeout = factories.dead_letter(
        task_name=HEALTH, queue="monitoring", error_message="TimeoutError: 30 s"
    )
    requeued = factories.dead_letter(requeued_at=utcnow(), requeued_task_id=str(uuid.uuid4()))
    discarded = factories.dead_letter(discarded_at=utcnow())
    db.session.commit()
    response = client.get("/tasks/dead-letters/")
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert row_ids(page) == [timeout.id, refused.id]  # open ones, newest first
    assert RETRIEVE in page and "monitoring" in page and "TimeoutError: 30 s" in page
    assert '[7, 12] {"full": true}' in page  # the arguments preview
    assert 'type="checkbox"' not in page and "Retry" not in page  # a viewer reads only
    assert row_ids(page_text(client, f"/tasks/dead-letters/?task={HEALTH}")) == [timeout.id]
    assert row_ids(page_text(client, "/tasks/dead-letters/?q=refused")) == [refused.id]
    assert row_ids(page_text(client, "/tasks/dead-letters/?q=REFUSED")) == [refused.id]
    assert row_ids(page_text(client, "/tasks/dead-letters/?q=50%25")) == []  # % is literal
    page = page_text(client, "/tasks/dead-letters/?state=requeued")
    assert row_ids(page) == [requeued.id] and requeued.requeued_task_id in page
    assert row_ids(page_text(client, "/tasks/dead-letters/?state=discarded")) == [discarded.id]
    all_ids = row_ids(page_text(client, "/tasks/dead-letters/?state=all"))
    assert all_ids == [discarded.id, requeued.id, timeout.id, refused.id]
    for query in ("state=dead", "before=x", f"after={10**30}"):
        assert client.get(f"/tasks/dead-letters/?{query}").status_code == 400, query


def test_detail_shows_the_whole_message(client: FlaskClient, viewer: str) -> None:
    letter = factories.dead_letter()
    db.session.commit()
    response = client.get(f"/tasks/dead-letters/{letter.id}/")
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert letter.task_id in page and RETRIEVE in page
    assert '"full": true' in page and '"ewas_schedule_id": 3' in page
    assert "ConnectionError: connection refused by api.example.org" in page
    assert "Retry now" not in page  # viewer
    for letter_id in (999999, 10**30):
        assert client.get(f"/tasks/dead-letters/{letter_id}/").status_code == 404


def test_polled_fragment_and_etag(client: FlaskClient, operator: str) -> None:
    letter = factories.dead_letter()
    db.session.commit()
    response = client.get("/tasks/dead-letters/?q=refused", headers=HTMX)
    assert response.status_code == 200
    assert response.text.startswith('<div id="dead-letters-table"')
    assert 'data-hx-trigger="every 30s"' in response.text and "data-live" in response.text
    assert 'data-hx-get="/tasks/dead-letters/?q=refused"' in response.text
    etag = response.headers["ETag"]
    again = client.get("/tasks/dead-letters/?q=refused", headers=htmx(etag=etag))
    assert again.status_code == 304
    kept = client.get(f"/tasks/dead-letters/?q=refused&id={letter.id}", headers=HTMX).text
    assert f'value="{letter.id}" checked' in kept
    factories.dead_letter(error_message="connection refused again")
    db.session.commit()
    changed = client.get("/tasks/dead-letters/?q=refused", headers=htmx(etag=etag))
    assert changed.status_code == 200


def test_retry_one_now_sends_the_exact_message_through_the_broker(
    client: FlaskClient, operator: str, redis_client: redis.Redis
) -> None:
    letter = factories.dead_letter()
    db.session.commit()
    page = client.get("/tasks/dead-letters/").text
    assert f'formaction="/tasks/dead-letters/{letter.id}/requeue/"' in page
    response = client.post(
        f"/tasks/dead-letters/{letter.id}/requeue/",
        data={"csrf_token": operator, "next": "/tasks/dead-letters/?q=refused"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks/dead-letters/?q=refused"
    db.session.expire_all()
    assert letter.requeued_at is not None and letter.requeued_task_id
    (message,) = messages_in(redis_client, "default")
    headers = message["headers"]
    assert headers["id"] == letter.requeued_task_id and headers["task"] == RETRIEVE
    assert headers["ewas_retry_of"] == letter.task_id and headers["ewas_schedule_id"] == 3
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "dead_letter.requeue"))
    assert entry.target_id == str(letter.id) and entry.actor_name == "operator"
    page = page_text(client, f"/tasks/dead-letters/{letter.id}/")
    assert f"Dead letter #{letter.id} requeued as task {letter.requeued_task_id}." in page
    assert "Retry now" not in page  # handled: no more actions
    # A second time: refused with the reason, nothing sent.
    response = client.post(
        f"/tasks/dead-letters/{letter.id}/requeue/", data={"csrf_token": operator}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tasks/dead-letters/{letter.id}/"
    assert "already requeued or discarded" in page_text(client, f"/tasks/dead-letters/{letter.id}/")
    assert redis_client.llen("default") == 1


def test_discard_one(client: FlaskClient, operator: str, redis_client: redis.Redis) -> None:
    letter = factories.dead_letter()
    db.session.commit()
    response = client.post(
        f"/tasks/dead-letters/{letter.id}/discard/", data={"csrf_token": operator}
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert letter.discarded_at is not None and letter.requeued_at is None
    assert redis_client.llen("default") == 0
    assert f"Dead letter #{letter.id} discarded." in page_text(client, "/tasks/dead-letters/")
    assert "dead_letter.discard" in set(db.session.scalars(select(AuditEntry.action)))
    for path in ("/tasks/dead-letters/999999/discard/", f"/tasks/dead-letters/{10**30}/requeue/"):
        assert client.post(path, data={"csrf_token": operator}).status_code == 404


def test_selection_shows_each_outcome(
    client: FlaskClient, operator: str, redis_client: redis.Redis
) -> None:
    first, second = factories.dead_letter(), factories.dead_letter()
    handled = factories.dead_letter(discarded_at=utcnow())
    db.session.commit()
    ids = [first.id, second.id, handled.id, 999999]
    response = client.post(
        "/tasks/dead-letters/selected/",
        data={"csrf_token": operator, "action": "requeue", "id": [str(i) for i in ids]},
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/tasks/dead-letters/?only=")
    page = page_text(client, location)
    assert "2 dead letters requeued." in page
    assert f"Dead letter {handled.id} was already requeued or discarded." in page
    assert "Dead letter 999999 does not exist." in page
    assert "Showing the dead letters you just acted on" in page
    assert sorted(row_ids(page)) == sorted([first.id, second.id, handled.id])
    db.session.expire_all()
    for letter in (first, second):
        assert letter.requeued_task_id and letter.requeued_task_id in page
    sent = {m["headers"]["id"] for m in messages_in(redis_client, "default")}
    assert sent == {first.requeued_task_id, second.requeued_task_id}

    response = client.post(
        "/tasks/dead-letters/selected/", data={"csrf_token": operator, "action": "discard"}
    )
    assert response.status_code == 303
    assert "Select at least one dead letter." in page_text(client, "/tasks/dead-letters/")
    response = client.post(
        "/tasks/dead-letters/selected/",
        data={"csrf_token": operator, "action": "explode", "id": str(first.id)},
    )
    assert response.status_code == 303
    assert "Choose to requeue or to discard." in page_text(client, "/tasks/dead-letters/")


def test_all_matching_asks_first_then_acts_on_the_filter_only(
    client: FlaskClient, operator: str
) -> None:
    refused = [factories.dead_letter() for _ in range(4)]
    others = [
        factories.dead_letter(task_name=HEALTH, error_message="TimeoutError") for _ in range(2)
    ]
    db.session.commit()
    page = client.get("/tasks/dead-letters/?q=refused").text
    assert 'href="/tasks/dead-letters/all/?action=discard&amp;q=refused"' in page
    response = client.get("/tasks/dead-letters/all/?action=discard&q=refused")
    assert response.status_code == 200
    confirm = html.unescape(response.text)
    assert "Discard 4 dead letters" in confirm and 'name="q" value="refused"' in confirm
    db.session.expire_all()
    assert all(letter.discarded_at is None for letter in refused)  # asking changes nothing

    response = client.post(
        "/tasks/dead-letters/all/",
        data={"csrf_token": operator, "action": "discard", "q": "refused", "task": ""},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks/dead-letters/?q=refused"
    assert "4 dead letters discarded." in page_text(client, response.headers["Location"])
    db.session.expire_all()
    assert all(letter.discarded_at is not None for letter in refused)
    assert all(letter.discarded_at is None for letter in others)


def test_all_matching_is_bounded_per_request(
    client: FlaskClient, operator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web import dead_letters as view

    monkeypatch.setattr(view, "MAX_ALL", 3)
    letters = [factories.dead_letter() for _ in range(5)]
    db.session.commit()
    confirm = html.unescape(client.get("/tasks/dead-letters/all/?action=requeue").text)
    assert "Retry 3 dead letters now" in confirm and "More than 3 match" in confirm
    response = client.post(
        "/tasks/dead-letters/all/", data={"csrf_token": operator, "action": "requeue"}
    )
    assert response.status_code == 303
    page = page_text(client, "/tasks/dead-letters/")
    assert "3 dead letters requeued." in page and "run the action again" in page
    db.session.expire_all()
    done = [letter.id for letter in letters if letter.requeued_at is not None]
    assert done == [letter.id for letter in letters[2:]]  # the newest first
    assert row_ids(page) == [letters[1].id, letters[0].id]


def test_viewer_cannot_act_and_csrf_is_required(
    app: Flask, client: FlaskClient, viewer: str, login_as: Callable
) -> None:
    letter = factories.dead_letter()
    db.session.commit()
    assert client.get("/tasks/dead-letters/all/?action=discard").status_code == 403
    for path, data in (
        (f"/tasks/dead-letters/{letter.id}/requeue/", {}),
        (f"/tasks/dead-letters/{letter.id}/discard/", {}),
        ("/tasks/dead-letters/selected/", {"action": "discard", "id": str(letter.id)}),
        ("/tasks/dead-letters/all/", {"action": "discard"}),
    ):
        assert client.post(path, data={**data, "csrf_token": viewer}).status_code == 403, path
    operator = app.test_client()
    login_as(operator, Role.OPERATOR)
    response = operator.post(f"/tasks/dead-letters/{letter.id}/discard/")
    assert response.status_code == 400
    anonymous = app.test_client().get("/tasks/dead-letters/")
    assert anonymous.status_code == 302
    db.session.expire_all()
    assert letter.discarded_at is None and letter.requeued_at is None


def test_secrets_redacted_and_capped_on_pages_and_api(
    client: FlaskClient, viewer: str, token_for: Callable
) -> None:
    from app.tracking.capture import REDACTED

    letter = factories.dead_letter(
        args=[{"password": "hunter2"}, "x" * 70_000],
        kwargs={"api_key": "sk-live-123", "city": "Lyon"},
        headers={"authorization": "Bearer abc"},
    )
    db.session.commit()
    for path in ("/tasks/dead-letters/", f"/tasks/dead-letters/{letter.id}/"):
        page = page_text(client, path)
        assert "hunter2" not in page and "sk-live-123" not in page and "Bearer abc" not in page
        assert REDACTED in page and "Lyon" in page and "_truncated" in page
    api = bearer(token_for(Role.VIEWER))
    item = client.get("/tasks/api/dead-letters/", headers=api).json["items"][0]
    assert item["kwargs"] == {"api_key": REDACTED, "city": "Lyon"}
    assert item["args"]["_truncated"] is True and "hunter2" not in json.dumps(item)
    db.session.refresh(letter)
    assert letter.kwargs["api_key"] == "sk-live-123"  # the stored copy stays replayable
