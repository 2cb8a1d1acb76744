"""Scheduled-task pages: list, detail, the form and its preview, toggle, run now, delete."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.extensions import db
from app.models import (
    AuditEntry,
    Role,
    RunKind,
    ScheduledTask,
    ScheduleRun,
    TaskStatus,
)
from app.models.types import utcnow
from app.scheduler.store import get_store
from app.services.schedule_history import ScheduleStats
from tests import factories
from tests.factories import HEALTH
from tests.scheduler_support import scheduled_headers
from tests.support import HTMX, htmx

FAILURES = "task_monitoring.tasks.check_failure_rates"
LIST = "/tasks/scheduled/"
NEW = "/tasks/scheduled/new/"
PREVIEW = "/tasks/scheduled/preview/"
TIME_ATTR = re.compile(r'<time datetime="([^"]+)"')
# What HTML accepts in <time datetime>: at most three fraction digits (here UTC, milliseconds).
VALID_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def form(csrf: str, **overrides: str | None) -> dict[str, str]:
    """Everything the form posts, as a browser would, with ``overrides``; None drops a field."""
    data = {
        "csrf_token": csrf,
        "name": "nightly",
        "task": HEALTH,
        "kind": "crontab",
        "crontab": "0 2 * * *",
        "interval_every": "",
        "interval_unit": "minutes",
        "run_at": "",
        "timezone": "UTC",
        "start_at": "",
        "expires_at": "",
        "args": "[]",
        "kwargs": "{}",
        "queue": "",
        "priority": "",
        "max_retries": "",
        "retry_backoff_seconds": "",
        "chain": "[]",
        "misfire_policy": "run_once",
        "enabled": "y",
        "description_en": "",
        "description_fr": "",
        "description_es": "",
        "description_ar": "",
        **overrides,
    }
    return {k: v for k, v in data.items() if v is not None}


def field_errors(page: str, field_id: str) -> str:
    """The error text shown beside the field ``field_id`` ('' when none)."""
    found = re.search(rf'<ul class="field-errors" id="{field_id}-errors">(.*?)</ul>', page, re.S)
    if not found:
        return ""
    text = re.sub(r"<[^>]+>", "", found.group(1).replace("</li>", " "))  # a value's <bdi> too
    return html.unescape(text)


def add_run(
    schedule_id: int,
    minutes_ago: float,
    status: TaskStatus | None = TaskStatus.SUCCESS,
    seconds: float = 1.0,
    kind: RunKind = RunKind.SCHEDULED,
    error: str | None = None,
) -> ScheduleRun:
    """A run row, and (unless missed or unsent) the execution it started (the test commits)."""
    occurrence = utcnow() - timedelta(minutes=minutes_ago)
    sent = kind != RunKind.MISSED and error is None
    run = ScheduleRun(
        schedule_id=schedule_id,
        occurrence=occurrence,
        kind=kind,
        task_id=str(uuid.uuid4()) if kind != RunKind.MISSED else None,
        sent_at=occurrence if sent else None,
        error=error,
    )
    db.session.add(run)
    if sent and status is not None:
        factories.execution(
            task_id=run.task_id,
            task_name=HEALTH,
            status=status,
            created_at=occurrence,
            started_at=occurrence,
            completed_at=occurrence + timedelta(seconds=seconds),
            error_message="ValueError: boom\nat line 3" if status == TaskStatus.FAILURE else None,
            schedule_id=schedule_id,
            schedule_occurrence=occurrence,
        )
    db.session.commit()
    db.session.flush()
    return run


def audit_actions() -> list[str]:
    """The schedule actions audited so far, oldest first."""
    query = select(AuditEntry.action).where(AuditEntry.target_type == "schedule")
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


@pytest.fixture
def operator(client: FlaskClient, login_as: Callable) -> tuple[FlaskClient, str]:
    return client, login_as(client, Role.OPERATOR)


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable) -> tuple[FlaskClient, str]:
    return client, login_as(client, Role.VIEWER)


def set_timezone(client: FlaskClient, csrf: str, zone: str) -> None:
    response = client.post(
        "/tasks/preferences", data={"timezone": zone, "csrf_token": csrf, "next": LIST}
    )
    assert response.status_code == 303


# --- the list ------------------------------------------------------------------------------


def test_list_shows_timing_next_run_last_run_and_controls(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    noon = factories.schedule()
    factories.schedule(name="often", kind="interval", interval_every=5, interval_unit="minutes")
    factories.schedule(name="once", kind="one_time", run_at=utcnow() + timedelta(days=3))
    add_run(noon.id, minutes_ago=30, status=TaskStatus.FAILURE)
    db.session.commit()
    page = client.get(LIST)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert '<code class="nowrap ltr" dir="ltr">0 12 * * *</code>' in text
    assert "every 5 minutes" in text and "once at" in text
    row = re.search(rf'<tr id="schedule-{noon.id}">(.*?)</tr>', page.text, re.S).group(1)
    assert "status-failure" in row  # last run: its execution's status, colour and text
    assert "12:00:00" in row  # next run at noon, shown in UTC (the default display zone)
    assert page.text.count(">never<") == 2  # the other two have not run
    assert 'href="/tasks/scheduled/new/"' in page.text
    assert page.text.count(">Run now<") == 3 and page.text.count(">Disable<") == 3


def test_next_run_is_shown_in_the_readers_timezone(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    noon = factories.schedule()  # noon UTC
    db.session.commit()
    set_timezone(client, csrf, "Asia/Kolkata")
    row = re.search(rf'<tr id="schedule-{noon.id}">(.*?)</tr>', client.get(LIST).text, re.S)
    shown = re.search(r">([^<]*)</time>", row.group(1)).group(1)
    assert "5:30:00" in shown and "PM" in shown  # UTC+05:30
    due = TIME_ATTR.search(row.group(1)).group(1)
    assert datetime.fromisoformat(due).astimezone(UTC).hour == 12


def test_next_run_is_computed_when_redis_lost_the_entry(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    client, _ = operator
    noon = factories.schedule()
    db.session.commit()
    redis_client.flushdb()
    row = re.search(rf'<tr id="schedule-{noon.id}">(.*?)</tr>', client.get(LIST).text, re.S)
    assert "12:00:00" in row.group(1)


def test_a_schedule_whose_run_was_not_sent_shows_late_with_the_reason(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    noon = factories.schedule(grace_seconds=60)
    db.session.commit()
    row = lambda: re.search(rf'<tr id="schedule-{noon.id}">(.*?)</tr>', client.get(LIST).text, re.S)  # noqa: E731
    assert "never run" in row().group(1) and "late" not in row().group(1)
    # Timed two days ago: yesterday's noon went by with nothing sent (no beat ran).
    noon.scheduled_from = noon.created_at = utcnow() - timedelta(days=2)
    db.session.commit()
    cell = row().group(1)
    assert "status-failure" in cell and ">late<" in cell
    assert "nothing sent for" in cell
    detail = client.get(f"/tasks/scheduled/{noon.id}/").text
    assert ">late<" in detail and "nothing sent for" in detail and "1 min 0 s" in detail


def test_empty_list_says_how_to_add_schedules(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    empty = client.get(LIST).text
    assert "No schedules yet." in empty and "Create one with New schedule" in empty
    assert '<code class="ltr" dir="ltr">flask setup-scheduled-tasks</code>' in empty
    assert "flask setup-scheduled-tasks" not in client.get(LIST + "?q=nothing").text


def test_list_filters_by_name_and_state(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    factories.schedule(name="Daily report")
    factories.schedule(name="hourly_sync", crontab="0 * * * *", enabled=False)
    factories.schedule(name="100%_done")
    db.session.commit()
    names = lambda page: re.findall(r'/tasks/scheduled/\d+/">([^<]+)</a>', page.text)  # noqa: E731
    assert names(client.get(LIST + "?q=DAILY")) == ["Daily report"]
    assert names(client.get(LIST + "?q=%25")) == ["100%_done"]  # LIKE wildcards are literal
    assert names(client.get(LIST + "?enabled=no")) == ["hourly_sync"]
    assert names(client.get(LIST + "?enabled=yes")) == ["100%_done", "Daily report"]
    assert "No schedules match." in client.get(LIST + "?q=nothing").text
    assert client.get(LIST + "?enabled=maybe").status_code == 400
    assert client.get(LIST + "?q=%00").status_code == 200


def test_list_is_paged_by_name(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    for n in range(53):
        db.session.add(
            ScheduledTask(name=f"s{n:03d}", task=HEALTH, kind="crontab", crontab="0 * * * *")
        )
    db.session.commit()
    names = lambda page: re.findall(r'/tasks/scheduled/\d+/">([^<]+)</a>', page.text)  # noqa: E731
    link = lambda page, rel: html.unescape(re.search(rf'rel="{rel}" href="([^"]+)"', page.text)[1])  # noqa: E731
    first = client.get(LIST + "?q=s0")
    assert names(first) == [f"s{n:03d}" for n in range(25)] and 'rel="prev"' not in first.text
    second = client.get(link(first, "next"))
    assert names(second) == [f"s{n:03d}" for n in range(25, 50)]
    third = client.get(link(second, "next"))
    assert names(third) == ["s050", "s051", "s052"] and 'rel="next"' not in third.text
    polled_url = re.search(r'<div id="schedules"[^>]* data-hx-get="([^"]+)"', third.text)[1]
    polled = html.unescape(polled_url)
    assert "after=s049" in polled and "q=s0" in polled  # polling keeps the page and filter
    assert "q=s0" in link(third, "prev")  # the filter is kept
    assert names(client.get(link(third, "prev"))) == names(second)
    assert names(client.get(link(second, "prev"))) == names(first)


def test_list_fragment_for_htmx_and_304_when_unchanged(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    factories.schedule()
    db.session.commit()
    fragment = client.get(LIST + "?q=noon", headers=HTMX)
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="schedules"')
    assert "<html" not in fragment.text and 'data-hx-trigger="every 30s"' in fragment.text
    assert 'data-hx-get="/tasks/scheduled/?q=noon"' in fragment.text  # polling keeps the filter
    assert "data-live" in fragment.text
    again = client.get(LIST + "?q=noon", headers=htmx(etag=fragment.headers["ETag"]))
    assert again.status_code == 304 and again.data == b""
    assert "<html" in client.get(LIST).text


# --- permissions, CSRF, unknown ids ---------------------------------------------------------


def test_viewer_reads_but_has_no_buttons_and_is_refused_actions(
    viewer: tuple[FlaskClient, str],
) -> None:
    client, csrf = viewer
    noon = factories.schedule()
    db.session.commit()
    detail = f"/tasks/scheduled/{noon.id}/"
    for page in (client.get(LIST), client.get(detail)):
        assert page.status_code == 200 and "noon" in page.text
        for action in (">Run now<", ">Disable<", ">Delete<", ">Edit<", "New schedule"):
            assert action not in page.text
    for path in ("toggle/", "run/", "delete/", "edit/"):
        response = client.post(detail + path, data={"csrf_token": csrf, "confirm": "yes"})
        assert response.status_code == 403, path
    assert client.post(NEW, data=form(csrf)).status_code == 403
    for path in (NEW, detail + "edit/", detail + "delete/", PREVIEW):
        assert client.get(path).status_code == 403, path
    db.session.expire_all()
    assert db.session.get(ScheduledTask, noon.id).enabled
    assert db.session.scalar(select(func.count(ScheduleRun.id))) == 0


def test_anonymous_is_sent_to_sign_in(client: FlaskClient, users: dict) -> None:
    response = client.get(LIST)
    assert response.status_code == 302 and "/tasks/login/" in response.headers["Location"]


def test_posts_need_the_csrf_token(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    noon = factories.schedule()
    db.session.commit()
    response = client.post(f"/tasks/scheduled/{noon.id}/toggle/", data={"enabled": "0"})
    assert response.status_code == 400 and "reload the page" in response.text
    assert client.post(NEW, data=form("forged")).status_code == 400
    db.session.expire_all()
    assert db.session.get(ScheduledTask, noon.id).enabled
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks/scheduled/424242/"),
        ("GET", "/tasks/scheduled/99999999999/"),
        ("GET", "/tasks/scheduled/0/"),
        ("GET", "/tasks/scheduled/424242/edit/"),
        ("POST", "/tasks/scheduled/424242/edit/"),
        ("POST", "/tasks/scheduled/424242/toggle/"),
        ("POST", "/tasks/scheduled/99999999999/run/"),
        ("GET", "/tasks/scheduled/424242/delete/"),
        ("POST", "/tasks/scheduled/424242/delete/"),
    ],
)
def test_unknown_schedules_are_404(
    operator: tuple[FlaskClient, str], method: str, path: str
) -> None:
    client, csrf = operator
    response = client.open(path, method=method, data={"csrf_token": csrf, "confirm": "yes"})
    assert response.status_code == 404


# --- create and edit through the form ----------------------------------------------------


def test_create_a_crontab_schedule(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    page = client.get(NEW)
    assert page.status_code == 200
    assert f'<option value="{HEALTH}"' in page.text and "celery.chord" not in page.text
    assert '<option value="data_retrieval"' in page.text
    response = client.post(
        NEW,
        data=form(
            csrf,
            timezone="Europe/Berlin",
            queue="monitoring",
            max_retries="2",
            retry_backoff_seconds="30",
            misfire_policy="skip",
            chain=f'[{{"task": "{FAILURES}", "kwargs": {{"threshold": 0.5}}}}]',
            description_en="Nightly health",
            description_fr="Santé nocturne",
        ),
    )
    assert response.status_code == 303
    saved = db.session.scalar(select(ScheduledTask).where(ScheduledTask.name == "nightly"))
    assert response.headers["Location"] == f"/tasks/scheduled/{saved.id}/"
    assert (saved.kind, saved.crontab, saved.timezone) == ("crontab", "0 2 * * *", "Europe/Berlin")
    assert (saved.queue, saved.max_retries, saved.retry_backoff_seconds) == ("monitoring", 2, 30.0)
    assert saved.misfire_policy == "skip" and saved.enabled
    assert saved.chain == [{"task": FAILURES, "args": [], "kwargs": {"threshold": 0.5}}]
    assert saved.descriptions()["fr"] == "Santé nocturne"
    assert get_store().due_ms(saved.id) is not None  # beat sees it at once
    assert audit_actions() == ["schedule.create"]
    assert "nightly is saved." in client.get(response.headers["Location"]).text


def test_create_an_interval_schedule(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    response = client.post(
        NEW,
        data=form(
            csrf, kind="interval", crontab="", interval_every="90", interval_unit="seconds",
            args="[]", kwargs='{"threshold": 0.2}', enabled=None, task=FAILURES,
        ),
    )  # fmt: skip
    assert response.status_code == 303
    saved = db.session.scalar(select(ScheduledTask))
    assert (saved.kind, saved.interval_every, saved.interval_unit) == (
        "interval",
        90,
        "seconds",
    )
    assert saved.crontab is None and saved.kwargs == {"threshold": 0.2}
    assert not saved.enabled and get_store().due_ms(saved.id) is None


def test_create_a_one_time_schedule_in_the_readers_timezone(
    operator: tuple[FlaskClient, str],
) -> None:
    client, csrf = operator
    set_timezone(client, csrf, "Asia/Kolkata")
    response = client.post(
        NEW, data=form(csrf, kind="one_time", crontab="", run_at="2035-01-01T10:00")
    )
    assert response.status_code == 303
    saved = db.session.scalar(select(ScheduledTask))
    assert saved.run_at == datetime(2035, 1, 1, 4, 30, tzinfo=UTC)
    edit = client.get(f"/tasks/scheduled/{saved.id}/edit/")
    assert 'value="2035-01-01T10:00"' in edit.text  # shown back in the reader's time


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"crontab": "61 * * * *"}, "crontab", "is not a valid crontab expression"),
        ({"crontab": "* * *"}, "crontab", "exactly 5 fields"),
        ({"args": "[1,"}, "args", "args is not valid JSON"),
        ({"args": '{"a": 1}'}, "args", "args must be a JSON list"),
        ({"kwargs": "[1]"}, "kwargs", "kwargs must be a JSON object"),
        ({"kwargs": '{"nope": 1}'}, "kwargs", "does not take these arguments"),
        ({"task": "no.such.task"}, "task", "Unknown task 'no.such.task'"),
        ({"name": " "}, "name", "A name of 1 to 200 characters"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown timezone"),
        ({"queue": "nowhere"}, "queue", "Unknown queue"),
        ({"kind": "weekly"}, "kind", "kind must be one of"),
        ({"kind": "interval", "interval_every": "0"}, "interval_every", "from 1 to"),
        ({"kind": "interval", "interval_every": "ten"}, "interval_every", "Not a valid integer"),
        ({"kind": "one_time", "run_at": ""}, "run_at", "needs run_at"),
        ({"kind": "one_time", "run_at": "2001-01-01T00:00"}, "run_at", "in the past"),
        ({"kind": "one_time", "run_at": "tomorrow"}, "run_at", "Not a valid datetime"),
        ({"priority": "12"}, "priority", "from 0 to 9"),
        ({"retry_backoff_seconds": "-1"}, "retry_backoff_seconds", "from 0 to 604800"),
        ({"retry_backoff_seconds": "inf"}, "retry_backoff_seconds", "from 0 to 604800"),
        ({"retry_backoff_seconds": "nan"}, "retry_backoff_seconds", "from 0 to 604800"),
        ({"retry_backoff_seconds": "1e300"}, "retry_backoff_seconds", "from 0 to 604800"),
        ({"kind": "interval", "interval_every": str(2**31)}, "interval_every", "to 2147483647"),
        (
            {"kind": "interval", "interval_every": "3661", "interval_unit": "days"},
            "interval_every",
            "at most 3660 days",
        ),
        ({"args": "[" * 100_000 + "]" * 100_000}, "args", "nested deeper than 64"),
        ({"args": "[NaN]"}, "args", "not a JSON number"),
        ({"timezone": "right/UTC"}, "timezone", "Unknown timezone"),
        ({"timezone": "Factory"}, "timezone", "Unknown timezone"),
        ({"kind": "one_time", "run_at": "9999-12-31T23:59"}, "run_at", "between the years 1970"),
        ({"start_at": "0001-01-01T00:00"}, "start_at", "between the years 1970"),
        ({"chain": '[{"task": "nope"}]'}, "chain", "must name a known task"),
        ({"misfire_policy": "sometimes"}, "misfire_policy", "misfire_policy must be one of"),
        ({"start_at": "2030-01-02T00:00", "expires_at": "2030-01-01T00:00"}, "expires_at", "after"),
    ],
)
def test_each_problem_is_shown_beside_its_field(
    operator: tuple[FlaskClient, str], overrides: dict, field: str, message: str
) -> None:
    client, csrf = operator
    response = client.post(NEW, data=form(csrf, **overrides))
    assert response.status_code == 422
    assert message in field_errors(response.text, field)
    assert 'aria-invalid="true"' in response.text
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0


def test_a_duplicate_name_is_a_conflict_beside_the_name(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    factories.schedule(name="nightly")
    db.session.commit()
    response = client.post(NEW, data=form(csrf))
    assert response.status_code == 409
    assert "already exists" in field_errors(response.text, "name")


def test_unknown_service_fields_become_a_form_error(app: Flask) -> None:
    from app.web.schedule_form import ScheduleForm

    with app.test_request_context():
        schedule_form = ScheduleForm(meta={"csrf": False})
        schedule_form.show_errors(
            InvalidInput("bad", {"bogus": ["Unknown field."], "crontab": ["Bad crontab."]})
        )
        assert schedule_form.form_errors == ["bogus: Unknown field."]
        assert schedule_form.crontab.errors == ["Bad crontab."]
        schedule_form.show_errors(InvalidInput("Nothing specific."))
        assert schedule_form.form_errors[-1] == "Nothing specific."


def test_the_form_survives_junk(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    junk = {name: "\x00 ' \" <script>" for name in form(csrf) if name != "csrf_token"}
    response = client.post(NEW, data={**junk, "csrf_token": csrf})
    assert response.status_code in (409, 422)
    assert "<script>" not in response.text.split("</head>")[1].replace("&lt;script&gt;", "")
    assert client.post(NEW, data={"csrf_token": csrf}).status_code == 422


def test_edit_prefills_and_saves_changes(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    noon = factories.schedule(args=[], kwargs={})
    db.session.commit()
    url = f"/tasks/scheduled/{noon.id}/edit/"
    page = client.get(url)
    assert page.status_code == 200
    assert 'value="noon"' in page.text and 'value="0 12 * * *"' in page.text
    assert "preview-times" in page.text  # the current timing's next runs
    response = client.post(url, data=form(csrf, name="noon", crontab="30 6 * * 1-5"))
    assert response.status_code == 303
    db.session.expire_all()
    saved = db.session.get(ScheduledTask, noon.id)
    assert saved.crontab == "30 6 * * 1-5"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "schedule.update"))
    assert entry.details == {"fields": ["crontab"]} and entry.target_id == str(noon.id)
    # An unchecked box is sent as nothing: the schedule is disabled.
    assert client.post(url, data=form(csrf, name="noon", enabled=None)).status_code == 303
    db.session.expire_all()
    assert not db.session.get(ScheduledTask, noon.id).enabled


def test_edit_errors_keep_the_saved_schedule(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    noon = factories.schedule()
    factories.schedule(name="other")
    db.session.commit()
    url = f"/tasks/scheduled/{noon.id}/edit/"
    response = client.post(url, data=form(csrf, name="other", crontab="0 0 31 2 *"))
    assert response.status_code == 422  # the crontab is checked before the name
    assert "never matches" in field_errors(response.text, "crontab")
    response = client.post(url, data=form(csrf, name="other"))
    assert response.status_code == 409 and "already exists" in field_errors(response.text, "name")
    db.session.expire_all()
    assert db.session.get(ScheduledTask, noon.id).crontab == "0 12 * * *"


# --- live preview ---------------------------------------------------------------------------


def preview_times(page: str) -> list[datetime]:
    values = TIME_ATTR.findall(page)
    assert all(VALID_TIME.fullmatch(value) for value in values), values
    return [datetime.fromisoformat(value) for value in values]


def test_form_inputs_ask_for_a_preview_as_you_type(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    page = client.get(NEW).text
    crontab_input = re.search(r'<input[^>]*id="crontab"[^>]*>', page).group(0)
    assert 'data-hx-get="/tasks/scheduled/preview/"' in crontab_input
    assert 'data-hx-trigger="input changed delay:400ms"' in crontab_input
    assert 'data-hx-target="#schedule-preview"' in crontab_input
    timezone_input = re.search(r'<input[^>]*id="timezone"[^>]*>', page).group(0)
    assert "data-hx-get" in timezone_input and "#crontab" in html.unescape(timezone_input)
    assert 'name="preview"' in page  # the no-JavaScript Preview button


def test_preview_of_a_crontab_lists_the_next_five_runs(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    response = client.get(PREVIEW, query_string={"kind": "crontab", "crontab": "*/15 * * * *"})
    assert response.status_code == 200 and "<html" not in response.text
    times = preview_times(response.text)
    assert len(times) == 5 and all(t.minute % 15 == 0 for t in times)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(times))
    assert times[0] > utcnow()


def test_preview_shows_reader_and_schedule_time(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    set_timezone(client, csrf, "Asia/Kolkata")
    query = {"kind": "crontab", "crontab": "0 9 * * *", "timezone": "Europe/London"}
    page = html.unescape(re.sub(r"<[^>]+>", " ", client.get(PREVIEW, query_string=query).text))
    assert "Your time (Asia/Kolkata)" in page and "Schedule time (Europe/London)" in page
    assert page.count(", 9:00:00") == 5  # 09:00 in London, every day
    assert page.count(":30:00") == 5  # India is at a half-hour offset from London


def test_preview_answers_304_when_unchanged(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    query = {"kind": "one_time", "run_at": "2035-06-01T08:00"}
    first = client.get(PREVIEW, query_string=query)
    assert preview_times(first.text) == [datetime(2035, 6, 1, 8, tzinfo=UTC)]
    again = client.get(
        PREVIEW, query_string=query, headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


def test_preview_of_an_interval(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    query = {"kind": "interval", "interval_every": "10", "interval_unit": "minutes"}
    times = preview_times(client.get(PREVIEW, query_string=query).text)
    assert len(times) == 5
    assert all(b - a == timedelta(minutes=10) for a, b in pairwise(times))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "crontab", "crontab": "61 * * * *"}, "is not a valid crontab expression"),
        ({"kind": "crontab", "crontab": "R * * * *"}, "Random crontab fields"),
        ({"kind": "crontab", "crontab": "0 * * * *", "timezone": "Nowhere"}, "Unknown timezone"),
        ({"kind": "interval", "interval_every": "x"}, "Not a valid integer"),
        ({"kind": "one_time", "run_at": "2001-01-01T00:00"}, "in the past"),
        ({}, "kind must be one of"),
    ],
)
def test_preview_explains_a_bad_timing(
    operator: tuple[FlaskClient, str], query: dict, message: str
) -> None:
    client, _ = operator
    response = client.get(PREVIEW, query_string=query)
    assert response.status_code == 200  # HTMX swaps 2xx only: the error replaces the times
    assert message in html.unescape(response.text) and "<time" not in response.text


def test_preview_replaces_the_timing_fields_error_lists(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    bad = client.get(PREVIEW, query_string={"kind": "crontab", "crontab": "61 * * * *"}).text
    crontab = re.search(
        r'<ul class="field-errors" id="crontab-errors" data-hx-swap-oob="true">(.*?)</ul>', bad
    )
    assert crontab and "field-error" in crontab.group(1)
    fixed = client.get(PREVIEW, query_string={"kind": "crontab", "crontab": "*/5 * * * *"}).text
    for name in ("kind", "crontab", "interval_every", "interval_unit", "run_at", "timezone",
                 "start_at", "expires_at"):  # fmt: skip
        assert f'<ul class="field-errors" id="{name}-errors" data-hx-swap-oob="true"></ul>' in fixed
    assert "<time" in fixed


def test_schedule_form_keeps_an_error_list_on_each_timing_field(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    page = client.get("/tasks/scheduled/new/").text
    assert '<ul class="field-errors" id="crontab-errors"></ul>' in page  # replaced when fixed
    assert 'id="args-errors"' not in page  # only the timing fields are live


def test_preview_of_a_timing_that_never_fires_again(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    query = {"kind": "crontab", "crontab": "0 * * * *", "expires_at": "2031-01-01T00:00"}
    query["start_at"] = "2030-12-31T22:30"
    times = preview_times(client.get(PREVIEW, query_string=query).text)
    assert [t.hour for t in times] == [23, 0]  # only two runs fit before it expires


def test_preview_button_without_javascript(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    response = client.post(NEW, data=form(csrf, crontab="0 6 * * *", preview="1"))
    assert response.status_code == 200 and "<html" in response.text
    assert [t.hour for t in preview_times(response.text)] == [6] * 5
    assert 'value="0 6 * * *"' in response.text
    assert db.session.scalar(select(func.count(ScheduledTask.id))) == 0
    bad = client.post(NEW, data=form(csrf, crontab="0 6 * *", preview="1"))
    assert "exactly 5 fields" in field_errors(bad.text, "crontab")


# --- actions ---------------------------------------------------------------------------------


def test_toggle_disables_and_enables_with_a_redirect_back(
    operator: tuple[FlaskClient, str],
) -> None:
    client, csrf = operator
    noon = factories.schedule()
    db.session.commit()
    url = f"/tasks/scheduled/{noon.id}/toggle/"
    back = "/tasks/scheduled/?q=noo"
    response = client.post(url, data={"csrf_token": csrf, "enabled": "0", "next": back})
    assert response.status_code == 303 and response.headers["Location"] == back
    db.session.expire_all()
    assert not db.session.get(ScheduledTask, noon.id).enabled
    assert get_store().due_ms(noon.id) is None
    assert "noon is disabled." in client.get(back).text
    response = client.post(
        url, data={"csrf_token": csrf, "enabled": "1", "next": "//evil.example/"}
    )
    assert response.headers["Location"] == LIST
    assert get_store().due_ms(noon.id) is not None
    assert audit_actions()[-2:] == ["schedule.disable", "schedule.enable"]


def test_htmx_toggle_swaps_just_the_row(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    noon = factories.schedule()
    db.session.commit()
    response = client.post(
        f"/tasks/scheduled/{noon.id}/toggle/",
        data={"enabled": "0", "next": LIST},
        headers=htmx(csrf=csrf),
    )
    assert response.status_code == 200
    assert response.text.strip().startswith(f'<tr id="schedule-{noon.id}">')
    assert "status-disabled" in response.text and ">Enable<" in response.text
    assert 'data-hx-target="closest tr"' in response.text


def test_toggle_reports_a_schedule_that_cannot_be_enabled(
    operator: tuple[FlaskClient, str],
) -> None:
    client, csrf = operator
    once = factories.schedule(
        name="once", kind="one_time", run_at=utcnow() + timedelta(days=1), enabled=False
    )
    db.session.commit()
    db.session.execute(
        ScheduledTask.__table__.update().values(run_at=datetime(2001, 1, 1, tzinfo=UTC))
    )
    db.session.commit()
    url = f"/tasks/scheduled/{once.id}/toggle/"
    response = client.post(url, data={"enabled": "1"}, headers=htmx(csrf=csrf))
    assert response.status_code == 200 and "in the past" in html.unescape(response.text)
    response = client.post(url, data={"csrf_token": csrf, "enabled": "1"}, follow_redirects=True)
    assert "Could not change once" in html.unescape(response.text)
    db.session.expire_all()
    assert not db.session.get(ScheduledTask, once.id).enabled


def test_run_now_sends_the_task_and_records_a_manual_run(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    client, csrf = operator
    noon = factories.schedule()
    db.session.commit()
    response = client.post(f"/tasks/scheduled/{noon.id}/run/", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tasks/scheduled/{noon.id}/"
    run = db.session.scalar(select(ScheduleRun))
    assert run.kind == RunKind.MANUAL and run.error is None and run.sent_at is not None
    headers = scheduled_headers(redis_client)
    assert [h["ewas_schedule_id"] for h in headers] == [noon.id]
    assert headers[0]["ewas_run_kind"] == "manual"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "schedule.run"))
    assert entry.details["task_id"] == run.task_id
    detail = client.get(response.headers["Location"]).text
    assert f"Sent noon now (task id {run.task_id})." in detail
    assert run.task_id in detail and "status-pending" in detail  # in the history, not tracked yet


def test_delete_asks_for_confirmation(operator: tuple[FlaskClient, str]) -> None:
    client, csrf = operator
    noon = factories.schedule()
    add_run(noon.id, minutes_ago=5)
    db.session.commit()
    url = f"/tasks/scheduled/{noon.id}/delete/"
    detail = client.get(f"/tasks/scheduled/{noon.id}/").text
    assert 'data-confirm="Delete noon and its run history?"' in detail
    assert f'href="{url}"' in detail  # the confirm page, for browsers without JavaScript
    confirm = client.get(url)
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.text
    unconfirmed = client.post(url, data={"csrf_token": csrf})
    assert unconfirmed.status_code == 200 and "Delete noon?" in unconfirmed.text
    assert db.session.get(ScheduledTask, noon.id) is not None
    response = client.post(url, data={"csrf_token": csrf, "confirm": "yes"})
    assert response.status_code == 303 and response.headers["Location"] == LIST
    db.session.expire_all()
    assert db.session.get(ScheduledTask, noon.id) is None
    assert db.session.scalar(select(func.count(ScheduleRun.id))) == 0
    assert get_store().due_ms(noon.id) is None
    assert "noon was deleted." in client.get(LIST).text
    assert audit_actions()[-1] == "schedule.delete"


# --- detail ------------------------------------------------------------------------------------


def test_detail_shows_configuration_statistics_and_errors(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    noon = factories.schedule(
        timezone="America/New_York", kwargs={}, max_retries=3, retry_backoff_seconds=5,
        chain=[{"task": FAILURES}], descriptions={"en": "Checks the engine"},
    )  # fmt: skip
    for n in range(8):
        add_run(noon.id, minutes_ago=100 - n, seconds=n + 1)
    add_run(noon.id, minutes_ago=50, status=TaskStatus.FAILURE, seconds=10)
    add_run(noon.id, minutes_ago=40, status=TaskStatus.FAILURE, seconds=10)
    add_run(noon.id, minutes_ago=30, kind=RunKind.MISSED, status=None)
    add_run(noon.id, minutes_ago=20, error="OperationalError: broker down", status=None)
    db.session.commit()
    page = client.get(f"/tasks/scheduled/{noon.id}/")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for expected in (
        "America/New_York", "at most 3", "backoff 5.0 s", FAILURES, "Checks the engine",
        "Over the latest 12 runs.", "80.0%", "5.6 s", "10.0 s",
    ):  # fmt: skip
        assert expected in text, expected
    errors = re.search(r"Most frequent errors</h3>(.*?)</table>", text, re.S).group(1)
    assert "ValueError: boom" in errors and "at line 3" not in errors
    assert re.search(r"ValueError: boom</td><td class=\"num\">2<", errors)
    assert "OperationalError: broker down" in errors
    assert "status-warning" in page.text and "missed" in page.text  # missed run in history
    assert len(preview_times(re.search(r"Next runs</h2>(.*?)</ol>", page.text, re.S).group(1))) == 5


def test_schedule_statistics_percentiles() -> None:
    stats = ScheduleStats(successes=19, failures=1, durations=[float(n) for n in range(1, 21)])
    assert stats.success_rate == 0.95 and stats.average == 10.5 and stats.p95 == 19.0
    assert ScheduleStats().success_rate is None and ScheduleStats().p95 is None


def test_detail_history_is_paged_and_polled(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    noon = factories.schedule()
    for n in range(30):
        add_run(noon.id, minutes_ago=n)
    db.session.commit()
    url = f"/tasks/scheduled/{noon.id}/"
    first = client.get(url, headers=HTMX)
    assert first.text.lstrip().startswith('<div id="history"') and "<html" not in first.text
    assert 'data-hx-trigger="every 30s"' in first.text
    first_times = preview_times(first.text)
    assert len(first_times) == 25 and first_times == sorted(first_times, reverse=True)
    older = html.unescape(re.search(r'rel="next" href="([^"#]+)', first.text).group(1))
    second = client.get(older)
    second_times = preview_times(re.search(r'<div id="history".*', second.text, re.S).group(0))
    assert len(second_times) == 5 and max(second_times) < min(first_times)
    assert "← Latest runs" in second.text and 'rel="next"' not in second.text
    for cursor in ("garbage", "9" * 30 + "_1", "1_" + "9" * 30, "1_0", "1"):
        assert client.get(url, query_string={"cursor": cursor}).status_code == 400, cursor
    conditional = client.get(url, headers=htmx(etag=first.headers["ETag"]))
    assert conditional.status_code == 304


def test_detail_of_a_disabled_schedule(viewer: tuple[FlaskClient, str]) -> None:
    client, _ = viewer
    noon = factories.schedule(enabled=False)
    db.session.commit()
    page = client.get(f"/tasks/scheduled/{noon.id}/")
    assert "Disabled: no runs are due." in page.text and "No runs yet." in page.text


def test_history_links_to_the_execution_page(app: Flask) -> None:
    from app.web.links import execution_url

    with app.test_request_context():
        assert execution_url("abc") == "/tasks/executions/abc/"
        assert execution_url(None) is None


def test_a_crontab_is_one_unbreakable_code_value(operator: tuple[FlaskClient, str]) -> None:
    client, _ = operator
    factories.schedule(name="every five", crontab="*/5 * * * *")
    db.session.commit()
    page = client.get("/tasks/scheduled/").text
    assert '<code class="nowrap ltr" dir="ltr">*/5 * * * *</code>' in page


def test_each_description_field_reads_in_its_own_direction(
    operator: tuple[FlaskClient, str],
) -> None:
    client, _ = operator
    page = client.get(NEW, headers={"Accept-Language": "ar"}).text
    for language, direction in (("en", "ltr"), ("fr", "ltr"), ("es", "ltr"), ("ar", "rtl")):
        tag = re.search(rf'<textarea[^>]*name="description_{language}"[^>]*>', page).group(0)
        assert f'dir="{direction}"' in tag and f'lang="{language}"' in tag, tag
