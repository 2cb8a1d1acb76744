"""The run pages: the runs list (filters in the URL, keyset pages, polled table), a run's page
(steps on one time axis, not-run reasons, the failure's traceback end, self-stopping polling),
resume and run again (operators only, refusals explained, nothing sent), the dashboard's
scheduled-runs panel and the links between runs and executions.

Runs are built the way the recorder builds them: real tracking events through ``apply_batch``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, PipelineRun, Role
from app.tracking import events as ev
from app.web.run_detail import traceback_tail
from tests import factories
from tests.support import HTMX, htmx
from tests.test_runs_fold import NAMES, apply, chain_story, event

LIST = "/tasks/runs/"
BASE = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(f'  File "/srv/pipe.py", line {n}, in frame_{n}\n    step_{n}()\n' for n in range(20))
    + "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>\n"
)


def run_story(
    when: datetime = BASE, fail_at: int | None = None, schedule_id: int | None = None
) -> tuple[list[str], PipelineRun]:
    """A 4-step chain fed through the recorder's fold; the step at ``fail_at`` fails for good
    with a two-line error and a long traceback."""
    ids, events = chain_story(when.timestamp(), fail_at=fail_at, schedule_id=schedule_id)
    for found in events:
        if found["kind"] == ev.FAILED:
            found["fields"].update(
                error_message="URLError: connection refused\nwhile fetching /idus/",
                traceback=TRACEBACK,
            )
    apply(events)
    return ids, run_of(ids[0])


def single_run(
    when: datetime, status: str = "success", task_name: str = "pipe.single", **recorded: object
) -> str:
    """A run of one task sent by hand (its arguments recorded unless told); its root task id."""
    task_id, ts = str(uuid.uuid4()), when.timestamp()
    fields = {"task_name": task_name, "queue": "default", "run_kind": "manual",
              "args": [1], "kwargs": {}, **recorded}  # fmt: skip
    events = [
        event(ev.PUBLISHED, task_id, ts, **fields),
        event(ev.STARTED, task_id, ts + 0.1, worker="w@h"),
    ]
    if status == "success":
        events.append(event(ev.SUCCEEDED, task_id, ts + 0.5, result={}))
    elif status == "failure":
        events.append(event(ev.FAILED, task_id, ts + 0.5, error_message="nope"))
    apply(events)
    return task_id


def run_of(root: str) -> PipelineRun:
    db.session.rollback()
    return db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == root))


def run_links(html: str) -> list[int]:
    """The run ids a page links to, in order."""
    return [int(i) for i in re.findall(r'href="/tasks/runs/(\d+)/"', html)]


def live_part(html: str) -> str:
    start = html.index('<div id="run-live"')
    return html[start : html.index(">", start) + 1]


def queued_messages(client: redis.Redis) -> int:
    """Messages waiting on the broker's default queue (where the pipe.* test tasks go)."""
    return int(client.llen("default"))


def run_audits() -> list[AuditEntry]:
    db.session.rollback()
    query = select(AuditEntry).where(AuditEntry.action.like("run.%")).order_by(AuditEntry.id)
    return list(db.session.scalars(query))


@pytest.fixture
def viewer(client: FlaskClient, login_as: Callable) -> FlaskClient:
    login_as(client, Role.VIEWER)
    return client


@pytest.fixture
def operator(app: Flask, login_as: Callable) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login_as(client, Role.OPERATOR)


def schedule(name: str = "idmc-daily-pipeline", enabled: bool = True) -> int:
    found = factories.schedule(
        name=name,
        task="data_pipeline.tasks.run_full_pipeline",
        crontab="0 6 * * *",
        enabled=enabled,
    )
    db.session.commit()
    return found.id


# --- the list -------------------------------------------------------------------------------


def test_list_shows_runs_newest_first_with_status_and_failed_step(viewer: FlaskClient) -> None:
    _, good = run_story(BASE)
    _, bad = run_story(BASE + timedelta(hours=1), fail_at=1)
    response = viewer.get(LIST)
    assert response.status_code == 200
    html = response.text
    assert run_links(html) == [bad.id, good.id]
    row = html[html.index(f'href="/tasks/runs/{bad.id}/"') :]
    row = row[: row.index("</tr>")]
    assert 'class="status status-failure"' in row and "status-success" not in row
    assert f'title="{NAMES[1]}">process</code>' in row and "URLError: connection refused" in row
    assert "2 of 4 done" not in row and "1 of 4 done" in row and "2 not run" in row
    assert 'href="/tasks/runs/"' in html and ">Runs</a>" in html  # the navigation entry


def test_filters_by_status_schedule_task_name_and_dates(viewer: FlaskClient) -> None:
    nightly = schedule("nightly")
    _, scheduled_fail = run_story(BASE, fail_at=0, schedule_id=nightly)
    _, scheduled_ok = run_story(BASE + timedelta(days=1), schedule_id=nightly)
    by_hand = run_of(single_run(BASE + timedelta(days=2), task_name="pipe.by_hand"))

    def listed(query: str) -> set[int]:
        response = viewer.get(f"{LIST}?{query}")
        assert response.status_code == 200, response.text
        return set(run_links(response.text))

    assert listed("status=failure") == {scheduled_fail.id}
    assert listed("status=success") == {scheduled_ok.id, by_hand.id}
    assert listed(f"schedule={nightly}") == {scheduled_fail.id, scheduled_ok.id}
    assert listed(f"schedule={nightly}&status=success") == {scheduled_ok.id}
    assert listed("task_name=pipe.by_hand") == {by_hand.id}
    assert listed("created_from=2026-03-02") == {scheduled_ok.id, by_hand.id}
    assert listed("created_from=2026-03-02&created_to=2026-03-02") == {scheduled_ok.id}
    assert listed("status=revoked") == set()
    # the filters are kept in the URL the table polls
    html = viewer.get(f"{LIST}?status=success&task_name=pipe.by_hand").text
    assert 'data-hx-get="/tasks/runs/?status=success&amp;task_name=pipe.by_hand"' in html


@pytest.mark.parametrize(
    "query, message",
    [
        ("schedule=%D9%A1", "Not a valid choice"),  # an Arabic-Indic digit one
        ("schedule=99999999999999999999", "Not a valid choice"),
        ("status=lost", "not a valid choice"),
        ("task_name=a%00b", "Control characters are not allowed"),
        ("task_name=" + "x" * 300, "255"),
        ("created_from=yesterday", "Use a date like"),
        ("created_to=9999-12-31", "Use a date between"),
        ("created_from=2026-03-02&created_to=2026-03-01", "The end must come after the start"),
        ("cursor=bm90IGEgY3Vyc29y", "cursor"),
    ],
)
def test_bad_filters_are_a_400_with_the_reason(
    viewer: FlaskClient, query: str, message: str
) -> None:
    response = viewer.get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert message.lower() in response.text.lower()


def test_keyset_pages_forward_and_back(viewer: FlaskClient) -> None:
    roots = [single_run(BASE + timedelta(minutes=i)) for i in range(53)]
    ids = [run_of(root).id for root in reversed(roots)]  # newest first
    first = viewer.get(LIST).text
    assert run_links(first) == ids[:50]
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = viewer.get(older).text
    assert run_links(second) == ids[50:]
    assert 'rel="next"' not in second and 'id="runs-table" data-hx-get' not in second  # not polled
    newer = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert run_links(viewer.get(newer).text) == ids[:50]


def test_polled_table_is_the_fragment_with_an_etag(viewer: FlaskClient) -> None:
    run_story(BASE, fail_at=2)
    response = viewer.get(f"{LIST}?status=failure", headers=HTMX)
    assert response.status_code == 200 and "<html" not in response.text
    assert response.text.lstrip().startswith('<div id="runs-table"')
    assert 'data-hx-trigger="every 30s"' in response.text
    assert "HX-Request" in response.headers["Vary"]
    again = viewer.get(f"{LIST}?status=failure", headers=htmx(etag=response.headers["ETag"]))
    assert again.status_code == 304 and again.data == b""
    single_run(BASE + timedelta(hours=1), status="failure")
    changed = viewer.get(f"{LIST}?status=failure", headers=htmx(etag=response.headers["ETag"]))
    assert changed.status_code == 200 and len(run_links(changed.text)) == 2


# --- one run --------------------------------------------------------------------------------


def test_failed_run_page_shows_steps_bars_reasons_and_the_traceback_end(
    viewer: FlaskClient,
) -> None:
    ids, run = run_story(BASE, fail_at=1)
    response = viewer.get(f"{LIST}{run.id}/")
    assert response.status_code == 200
    html = response.text
    rows = re.findall(r'<tr class="step step-([a-z_]+)', html)
    assert rows == ["success", "failure", "not_run", "not_run"]
    positions = [html.index(f"{task_id[:8]}</code>") for task_id in ids]
    assert positions == sorted(positions)  # the steps in order
    assert html.count('<svg class="run-bar"') == 4
    assert html.count('class="run-bar-success"') == 1 and html.count('class="run-bar-failure"') == 1
    for task_id in ids[:2]:  # each executed step links to its execution
        assert f'href="/tasks/executions/{task_id}/"' in html
    for task_id in ids[2:]:  # planned steps have no execution page
        assert f'href="/tasks/executions/{task_id}/"' not in html
    reason = f'step <code class="ltr" dir="ltr" title="{NAMES[1]}">process</code> failed'
    assert html.count(reason) == 2
    error = html[html.index('<tr class="step-error">') :]
    assert "URLError: connection refused\nwhile fetching /idus/" in error
    assert "urllib.error.URLError: &lt;urlopen error [Errno 111] Connection refused&gt;" in error
    assert "frame_19" in error and "frame_0\n" not in error
    assert "27 earlier lines are on the execution page" in error
    assert 'class="status status-failure"' in html
    assert "data-hx-trigger" not in live_part(html)  # final: the page does not poll
    assert "Resume from the failed step" not in html  # a viewer gets no buttons


def test_a_running_run_polls_itself_until_it_is_final(viewer: FlaskClient) -> None:
    ids, events = chain_story(BASE.timestamp(), fail_at=1)
    events[-1] = event(ev.RETRIED, ids[1], events[-1]["ts"], error_message="later", eta=None)
    apply(events)
    run = run_of(ids[0])
    html = viewer.get(f"{LIST}{run.id}/").text
    assert 'data-hx-trigger="every 3s"' in live_part(html)
    assert re.findall(r'<tr class="step step-([a-z_]+)', html) == [
        "success", "retry", "waiting", "waiting"]  # fmt: skip
    assert html.count("not sent yet") == 2
    fragment = viewer.get(f"{LIST}{run.id}/", headers=HTMX)
    assert fragment.text.lstrip().startswith('<div id="run-live"')
    assert 'name="csrf_token"' not in fragment.text
    apply([event(ev.FAILED, ids[1], BASE.timestamp() + 9, attempt=1, error_message="gave up")])
    final = viewer.get(f"{LIST}{run.id}/", headers=HTMX).text
    assert "data-hx-trigger" not in live_part(final) and "status-failure" in final


def test_unknown_runs_are_404(viewer: FlaskClient) -> None:
    for path in ("0/", "424242/", "99999999999999999999999999/", "-1/", "abc/"):
        assert viewer.get(f"{LIST}{path}").status_code == 404, path


def test_execution_page_says_which_run_it_belongs_to(viewer: FlaskClient) -> None:
    ids, run = run_story(BASE, fail_at=1)
    html = viewer.get(f"/tasks/executions/{ids[1]}/").text
    assert f'href="/tasks/runs/{run.id}/">Run #{run.id}</a>' in html


def test_traceback_tail_keeps_the_last_lines() -> None:
    assert traceback_tail(None) == (0, "")
    assert traceback_tail("a\nb\n", lines=5) == (0, "a\nb")
    text = "\n".join(str(n) for n in range(40))
    omitted, tail = traceback_tail(text)
    assert omitted == 25 and tail.splitlines() == [str(n) for n in range(25, 40)]


# --- resume and run again -------------------------------------------------------------------


def test_buttons_only_for_operators_and_only_on_a_failed_run(
    viewer: FlaskClient, operator: tuple[FlaskClient, str]
) -> None:
    _, failed = run_story(BASE, fail_at=0)
    _, succeeded = run_story(BASE + timedelta(hours=1))
    client, _ = operator
    html = client.get(f"{LIST}{failed.id}/").text
    assert f'action="/tasks/runs/{failed.id}/resume"' in html
    assert f'action="/tasks/runs/{failed.id}/again"' in html
    assert "Resume from the failed step" in html and 'name="csrf_token"' in html
    assert "Resume from the failed step" not in client.get(f"{LIST}{succeeded.id}/").text
    assert "/resume" not in viewer.get(f"{LIST}{failed.id}/").text


def test_a_viewer_cannot_resume(
    viewer: FlaskClient, login_as: Callable, redis_client: redis.Redis
) -> None:
    _, run = run_story(BASE, fail_at=0)
    csrf = login_as(viewer, Role.VIEWER)
    response = viewer.post(f"{LIST}{run.id}/resume", data={"csrf_token": csrf})
    assert response.status_code == 403
    response = viewer.post(f"{LIST}{run.id}/again", data={"csrf_token": csrf})
    assert response.status_code == 403
    assert queued_messages(redis_client) == 0 and run_audits() == []


def test_resume_of_a_run_that_did_not_fail_is_refused_with_a_message(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    _, run = run_story(BASE)
    client, csrf = operator
    response = client.post(f"{LIST}{run.id}/resume", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{LIST}{run.id}/"
    page = client.get(response.headers["Location"]).text
    flash = re.search(r'<p class="flash flash-error"[^>]*>([^<]+)</p>', page)
    assert flash and "fail" in flash.group(1).lower()
    assert queued_messages(redis_client) == 0
    assert [(a.action, a.outcome) for a in run_audits()] == [("run.resume", "conflict")]
    assert client.post(f"{LIST}424242/resume", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"{LIST}{run.id}/resume").status_code == 400  # no CSRF token


def test_resume_sends_the_failed_step_and_the_rest_as_one_chain(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    ids, run = run_story(BASE, fail_at=1)
    client, csrf = operator
    response = client.post(f"{LIST}{run.id}/resume", data={"csrf_token": csrf})
    assert response.status_code == 303
    location = response.headers["Location"]
    page = client.get(location).text
    assert "Resumed: 3 steps were sent again, starting with the failed one." in page
    # Still "failure" until the recorder adds the new step: the page polls meanwhile, and
    # offers no second resume.
    assert 'data-hx-trigger="every 3s"' in live_part(page) and "Resume from" not in page
    assert location.startswith(f"{LIST}{run.id}/?sent=") and f"sent={ids[1]}" not in location
    for bad in ("not-a-uuid", ids[1], ids[1].upper(), "%00"):
        assert "data-hx-trigger" not in live_part(client.get(f"{LIST}{run.id}/?sent={bad}").text)
    assert queued_messages(redis_client) == 1  # the chain's first step; the rest ride in it
    audits = run_audits()
    assert [(a.action, a.outcome) for a in audits] == [("run.resume", "ok")]
    assert len(audits[0].details["task_ids"]) == 3
    assert ids[1] in audits[0].details["replaces"].values()


def test_run_again_sends_a_new_run(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    root = single_run(BASE, status="failure")
    run = run_of(root)
    client, csrf = operator
    response = client.post(f"{LIST}{run.id}/again", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == f"{LIST}{run.id}/"
    page = client.get(response.headers["Location"]).text
    assert "The job was sent again as a new run." in page and "Follow its execution" in page
    assert queued_messages(redis_client) == 1
    assert [(a.action, a.outcome) for a in run_audits()] == [("run.again", "ok")]


def test_run_again_without_recorded_arguments_is_refused(
    operator: tuple[FlaskClient, str], redis_client: redis.Redis
) -> None:
    run = run_of(single_run(BASE, status="failure", args=None, kwargs=None))
    client, csrf = operator
    response = client.post(f"{LIST}{run.id}/again", data={"csrf_token": csrf})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).text
    assert "cannot be re-run exactly" in page and "flash-error" in page
    assert queued_messages(redis_client) == 0


# --- the dashboard panel --------------------------------------------------------------------


def test_dashboard_panel_shows_each_enabled_schedules_latest_run(
    viewer: FlaskClient, operator: tuple[FlaskClient, str]
) -> None:
    daily, hourly = schedule("idmc-daily-pipeline"), schedule("hourly-health-check")
    idle, off = schedule("weekly-data-validation"), schedule("old", enabled=False)
    run_story(BASE, schedule_id=daily)  # an older success, hidden by the newer failure
    _, failed = run_story(BASE + timedelta(days=1), fail_at=0, schedule_id=daily)
    _, fine = run_story(BASE, schedule_id=hourly)
    run_story(BASE, schedule_id=off)

    def panel(html: str) -> str:
        start = html.index('id="dashboard-runs"')
        return html[start : html.index("</section>", start)]

    def row(html: str, schedule_id: int) -> str:
        start = html.index(f'href="/tasks/scheduled/{schedule_id}/"')
        return html[start : html.index("</tr>", start)]

    page = panel(viewer.get("/tasks/").text)
    fragment = viewer.get("/tasks/dashboard/runs", headers=HTMX)
    assert fragment.status_code == 200 and panel(fragment.text) == page  # one markup, two uses
    assert 'data-hx-trigger="every 30s"' in page
    assert f'href="/tasks/scheduled/{off}/"' not in page
    failing = row(page, daily)
    assert 'class="status status-failure"' in failing and "status-success" not in failing
    assert f"Run #{failed.id}" in failing and f'title="{NAMES[0]}">retrieve</code>' in failing
    assert "URLError: connection refused" in failing and "while fetching" not in failing
    assert "Resume from the failed step" not in failing  # a viewer
    assert 'class="status status-success"' in row(page, hourly) and f"Run #{fine.id}" in row(
        page, hourly
    )
    assert "No run yet." in row(page, idle)

    client, _ = operator
    as_operator = panel(client.get("/tasks/").text)
    assert f'action="/tasks/runs/{failed.id}/resume"' in row(as_operator, daily)
    assert 'name="csrf_token"' in as_operator
    polled = client.get("/tasks/dashboard/runs", headers=HTMX)
    assert 'name="csrf_token"' not in polled.text  # polled: the header carries the token
    again = client.get("/tasks/dashboard/runs", headers=htmx(etag=polled.headers["ETag"]))
    assert again.status_code == 304


def test_arabic_isolates_names_and_errors(client: FlaskClient, login_as: Callable) -> None:
    _, run = run_story(BASE, fail_at=1)
    csrf = login_as(client, Role.OPERATOR)
    client.post("/tasks/preferences", data={"language": "ar", "csrf_token": csrf})
    viewer = client
    html = viewer.get(f"{LIST}{run.id}/").text
    assert 'dir="rtl"' in html
    assert f'<code class="ltr" dir="ltr" title="{NAMES[1]}">process</code>' in html
    assert '<pre class="traceback ltr" dir="ltr">' in html
    assert '<pre class="error-text ltr" dir="ltr">' in html
    assert "Resume" not in html and "not run" not in html  # translated
    assert html.count('<code class="ltr" dir="ltr">') >= 8  # names and ids, isolated
