"""Browser tests: headless Debian chromium driven by Playwright against a real web process.

Each test saves screenshots into tests/screenshots/ (git-ignored) for a reviewer, and fails on any
console error or warning, uncaught exception or Content-Security-Policy violation in the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from babel.support import Translations
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import (
    PipelineRun,
    Role,
    RunStep,
    ScheduleRun,
    TaskExecution,
    TaskStatus,
)
from app.models.types import utcnow
from app.monitoring.rollups import add_counts, bucket_of
from app.scheduler.service import create_schedule
from app.services.statistics import window_start
from tests import factories
from tests.conftest import PROJECT_DIR, SCREENSHOTS_DIR, screenshot
from tests.idmc_server import IDU_RECORDS
from tests.support import PASSWORDS, wait_for

pytestmark = pytest.mark.browser

FAST_POLL = {"LIVE_POLL_SECONDS": "1"}
IDU_PATH = "/idus/last-180-days/"
# Counts the polls of one element: attempted (htmx:beforeRequest, even when paused) and sent.
COUNT_POLLS = """id => {
  window.__polls = {tried: 0, sent: 0};
  const count = kind => e => { if (e.detail.elt.id === id) window.__polls[kind]++; };
  document.addEventListener("htmx:beforeRequest", count("tried"));
  document.addEventListener("htmx:beforeSend", count("sent"));
}"""
WATCH_CSP = """document.addEventListener("securitypolicyviolation", e => {
  const element = e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 200) : "";
  const where = `${e.sourceFile}:${e.columnNumber}`;
  (window.__csp = window.__csp || []).push(
    `${e.violatedDirective} ${e.blockedURI || "inline"} at ${where} ${element}`
  );
});"""


class Problems:
    """Console errors and warnings, uncaught exceptions and CSP violations seen by a page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"exception: {error}"))
        page.add_init_script(WATCH_CSP)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url") or self.page.url
            self.seen.append(f"console {message.type}: {message.text} ({where})")

    def check(self, where: str) -> None:
        """Nothing so far, including CSP violations reported inside the current document."""
        violations = self.page.evaluate("window.__csp || []")
        assert not self.seen and not violations, f"{where}: {self.seen + violations}"


@pytest.fixture
def page(browser_page: Any) -> Iterator[Any]:
    """The browser page, watched for console errors and CSP violations (checked at test end)."""
    browser_page.problems = Problems(browser_page)
    yield browser_page
    browser_page.problems.check("at the end of the test")


def sign_in(page: Any, base_url: str, role: Role = Role.OPERATOR) -> None:
    page.goto(f"{base_url}/tasks/login/")
    page.fill("input[name=username]", role.value)
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/tasks/")


def use_language(page: Any, language: str) -> None:
    """Pick a language in the top bar and apply it (the button beside the select)."""
    page.select_option("#language-select", language)
    page.click("#language-apply")
    expect(page.locator("html")).to_have_attribute("lang", language)


def finished_this_hour(success: int) -> None:
    """Add ``success`` executions of one second each to the current hour's roll-up."""
    row = {
        "hour": window_start(1),
        "task_type": "retrieval",
        "task_name": "data_pipeline.tasks.retrieve_source",
        "success": success,
        "failure": 0,
        "revoked": 0,
        "duration_count": success,
        "duration_sum": float(success),
        **{f"le_{i:02d}": 0 for i in range(12)},
    }
    row[bucket_of(1.0)] += success
    add_counts([row])
    db.session.commit()


def executions_of(*conditions: Any) -> list[TaskExecution]:
    """Executions as the other processes committed them by now (a fresh transaction each call)."""
    db.session.rollback()
    return list(db.session.scalars(select(TaskExecution).where(*conditions)))


def mark_page(page: Any) -> None:
    """A marker on ``window``: still there later means the page was never reloaded."""
    page.evaluate("window.__samePage = true")


def assert_same_page(page: Any) -> None:
    assert page.evaluate("window.__samePage === true"), "the page was reloaded"


def test_sign_in_reaches_the_dashboard(live_server: str, page: Any, users: Any) -> None:
    page.goto(f"{live_server}/tasks/")
    assert "/tasks/login/" in page.url
    screenshot(page, "login")
    sign_in(page, live_server)
    assert page.locator("h1").first.is_visible()
    screenshot(page, "dashboard")


def test_dashboard_panel_refreshes_in_place_and_pauses(
    start_web: Callable[..., str], page: Any, users: Any
) -> None:
    base = start_web(**FAST_POLL)
    sign_in(page, base)
    expect(page.locator("#dashboard-metrics")).to_have_attribute("data-hx-trigger", "every 1s")
    finished = page.locator("#dashboard-metrics .metric").first
    expect(finished).to_have_text("0")
    mark_page(page)

    finished_this_hour(7)
    expect(finished).to_have_text("7")  # the panel's own poll brought it, no reload
    assert_same_page(page)
    screenshot(page, "dashboard-refreshed")

    toggle = page.locator("#live-toggle")
    toggle.click()
    expect(toggle).to_have_text("Resume live updates")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page.evaluate(COUNT_POLLS, "dashboard-metrics")
    finished_this_hour(5)
    # (wait_for_function would eval its predicate in the page, which the CSP rightly forbids)
    wait_for(lambda: page.evaluate("window.__polls.tried") >= 3)  # 3 polls came due, paused...
    assert page.evaluate("window.__polls.sent") == 0  # ...and none was sent
    expect(finished).to_have_text("7")
    screenshot(page, "dashboard-paused")

    toggle.click()
    expect(toggle).to_have_text("Pause live updates")
    expect(finished).to_have_text("12")
    assert_same_page(page)


def test_schedule_form_preview_then_run_now_reaches_success(
    live_server: str,
    page: Any,
    users: Any,
    start_worker: Callable[..., Any],
    start_recorder: Callable[..., Any],
) -> None:
    start_recorder()
    sign_in(page, live_server)
    page.goto(f"{live_server}/tasks/scheduled/new/")
    screenshot(page, "schedule-form")

    page.fill("#name", "Queue snapshot from the browser")
    page.select_option("#task", "task_monitoring.tasks.snapshot_queues")
    page.select_option("#kind", "crontab")
    preview = page.locator("#schedule-preview")
    page.locator("#crontab").press_sequentially("*/15 * * * *")
    expect(preview.locator("table.preview-times tbody tr")).to_have_count(5)
    screenshot(page, "schedule-form-preview")

    page.fill("#crontab", "61 * * * *")
    expect(preview.locator(".preview-errors")).to_be_visible()
    expect(preview.locator("table")).to_have_count(0)
    screenshot(page, "schedule-form-preview-error")

    page.fill("#crontab", "*/15 * * * *")
    expect(preview.locator("table.preview-times tbody tr")).to_have_count(5)
    page.select_option("#queue", "monitoring")
    page.click("button.primary:has-text('Save')")
    page.wait_for_url(f"{live_server}/tasks/scheduled/*/")
    expect(page.locator("h1")).to_contain_text("Queue snapshot from the browser")
    screenshot(page, "schedule-detail")

    page.click("button:has-text('Run now')")
    expect(page.locator(".flash-success")).to_contain_text("Sent Queue snapshot from the browser")
    db.session.rollback()
    run = db.session.scalars(select(ScheduleRun)).one()
    link = page.locator(f"#history a[href*='{run.task_id}']")
    expect(link).to_be_visible()
    screenshot(page, "schedule-run-sent")

    # The recorder stores the sent task as pending; no worker consumes its queue yet.
    wait_for(lambda: executions_of(TaskExecution.task_id == run.task_id), timeout=30)
    link.click()
    page.wait_for_url(f"**/tasks/executions/{run.task_id}/")
    live = page.locator("#execution-live")
    expect(live).to_have_attribute("data-hx-trigger", "every 1s")
    expect(live.locator(".status").first).to_have_class("status status-pending")
    mark_page(page)
    screenshot(page, "execution-pending")

    start_worker(queues="monitoring")
    expect(live.locator(".status").first).to_have_class("status status-success", timeout=40_000)
    assert_same_page(page)
    expect(live).not_to_have_attribute("data-hx-trigger", "every 1s")  # final: polling stopped
    expect(page.locator("pre.json").first).to_contain_text("depths")
    screenshot(page, "execution-success")


def test_retry_two_failed_executions_together(
    start_web: Callable[..., str],
    app: Flask,
    page: Any,
    users: Any,
    start_worker: Callable[..., Any],
    start_recorder: Callable[..., Any],
) -> None:
    start_recorder()
    start_worker(queues="default")
    base = start_web(**FAST_POLL)
    celery = app.extensions["celery"]
    sent = [celery.send_task("tests.fail", args=[f"disk {n} full"]).id for n in (1, 2)]
    failed = TaskExecution.status == TaskStatus.FAILURE
    wait_for(lambda: len(executions_of(failed)) == 2, timeout=40)

    sign_in(page, base)
    page.goto(f"{base}/tasks/executions/")
    for task_id in sent:
        page.check(f"input[name=task_ids][value='{task_id}']")
    screenshot(page, "executions-selected")
    page.click("#executions-bulk button.primary:has-text('Retry')")

    outcome = page.locator("#bulk-outcome")
    expect(outcome).to_contain_text("2 of 2 retried.")
    new_ids = [
        row.locator("code").nth(1).inner_text() for row in outcome.locator("tr.outcome-ok").all()
    ]
    assert len(new_ids) == 2 and not set(new_ids) & set(sent)
    screenshot(page, "executions-retried")

    # The new executions appear in the (polled) table and fail again, as the task always does.
    table = page.locator("#executions-table")
    for new_id in new_ids:
        row = table.locator("tr", has=page.locator(f"input[value='{new_id}']"))
        expect(row.locator(".status")).to_have_class("status status-failure", timeout=30_000)
    for task_id in sent:  # the selection survived the table's refreshes
        expect(page.locator(f"input[name=task_ids][value='{task_id}']")).to_be_checked()
    retried = executions_of(TaskExecution.task_id.in_(new_ids))
    assert sorted(e.retry_of for e in retried) == sorted(sent)
    screenshot(page, "executions-retries-failed")


def test_a_running_execution_shows_its_log_lines_as_it_writes_them(
    start_web: Callable[..., str],
    app: Flask,
    page: Any,
    users: Any,
    start_worker: Callable[..., Any],
    start_recorder: Callable[..., Any],
) -> None:
    start_recorder()
    start_worker(queues="default")
    base = start_web(**FAST_POLL)
    task_id = app.extensions["celery"].send_task("tests.talk_slowly", args=[3, 4.0]).id
    wait_for(lambda: executions_of(TaskExecution.task_id == task_id), timeout=30)

    sign_in(page, base)
    page.goto(f"{base}/tasks/executions/{task_id}/")
    live = page.locator("#execution-live")
    logs = live.locator("table.logs")
    # Each line is written 4 s before the next: seen while the task still runs.
    expect(logs).to_contain_text("step 1 of 3", timeout=10_000)
    expect(live.locator(".status").first).to_have_class("status status-started")
    expect(logs).not_to_contain_text("step 2 of 3")
    expect(logs).to_contain_text("step 2 of 3", timeout=10_000)
    expect(live.locator(".status").first).to_have_class("status status-started")
    screenshot(page, "execution-live-logs")
    use_language(page, "ar")
    page.goto(f"{base}/tasks/executions/{task_id}/")
    expect(page.locator("#execution-live table.logs")).to_contain_text("step 2 of 3")
    screenshot(page, "execution-live-logs-ar")
    expect(page.locator("#execution-live .status").first).to_have_class(
        "status status-success", timeout=20_000
    )
    [done] = executions_of(TaskExecution.task_id == task_id)
    assert [line["message"] for line in done.logs] == [f"step {n} of 3" for n in (1, 2, 3)]


def test_arabic_is_right_to_left(live_server: str, page: Any, users: Any) -> None:
    sign_in(page, live_server)
    use_language(page, "ar")
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "ar")
    assert page.url == f"{live_server}/tasks/"
    catalog = Translations.load(str(PROJECT_DIR / "translations"), ["ar"])
    expected = catalog.gettext("Dashboard")
    assert expected != "Dashboard", "no compiled Arabic catalog: run scripts/install"
    expect(page.locator("nav.sections a").first).to_have_text(expected)
    screenshot(page, "dashboard-arabic")
    page.goto(f"{live_server}/tasks/executions/")
    expect(html).to_have_attribute("dir", "rtl")
    screenshot(page, "executions-arabic")


def sample_rows() -> dict[str, Any]:
    """One of each kind of row the pages show; returns the ids the detail pages need."""
    now = utcnow()
    failed = factories.execution(
        status=TaskStatus.FAILURE,
        args=[3],
        kwargs={"full": True},
        started_at=now - timedelta(seconds=4),
        completed_at=now,
        error_message="ConnectionError: connection refused",
        traceback="Traceback (most recent call last):\n  ...\nConnectionError: connection refused",
    )
    source = factories.source(name="IDMC")
    factories.variable(source, "idp", name="Internally displaced people")
    factories.alert(title="Retrieval failed")
    letter = factories.dead_letter(
        task_id=failed.task_id,
        task_name=failed.task_name,
        queue="data_retrieval",
        args=[3],
        kwargs={},
        headers=None,
        error_message="ConnectionError: connection refused",
    )
    schedule = create_schedule(
        name="nightly check",
        task="task_monitoring.tasks.health_check",
        kind="crontab",
        crontab="0 2 * * *",
    )
    db.session.commit()
    finished_this_hour(40)
    return {"execution": failed.task_id, "schedule": schedule.id, "letter": letter.id}


def test_every_page_loads_without_errors(live_server: str, page: Any, users: Any) -> None:
    rows = sample_rows()
    sign_in(page, live_server, Role.ADMIN)
    pages = {
        "dashboard": "/tasks/",
        "executions": "/tasks/executions/",
        "runs": "/tasks/runs/",
        "execution-detail": f"/tasks/executions/{rows['execution']}/",
        "scheduled": "/tasks/scheduled/",
        "scheduled-detail": f"/tasks/scheduled/{rows['schedule']}/",
        "scheduled-edit": f"/tasks/scheduled/{rows['schedule']}/edit/",
        "workers": "/tasks/workers/",
        "queues": "/tasks/queues/",
        "dead-letters": "/tasks/dead-letters/",
        "dead-letter-detail": f"/tasks/dead-letters/{rows['letter']}/",
        "alerts": "/tasks/alerts/",
        "task-types": "/tasks/types/",
        "sources": "/tasks/sources/",
        "users": "/tasks/users/",
        "tokens": "/tasks/tokens/",
        "audit": "/tasks/audit/",
    }
    for name, path in pages.items():
        response = page.goto(f"{live_server}{path}")
        assert response.status == 200, f"{path}: {response.status}"
        assert page.evaluate("document.documentElement.classList.contains('js')"), path
        page.problems.check(path)
        screenshot(page, f"page-{name}")

    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("dashboard", "executions", "execution-detail"):
        page.goto(f"{live_server}{pages[name]}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px wider than a 390px phone"
        screenshot(page, f"phone-{name}")


def _failed_run(root_id: str) -> PipelineRun | None:
    """The run of ``root_id`` once it failed with its later steps not run (fresh transaction)."""
    db.session.rollback()
    run = db.session.scalar(select(PipelineRun).where(PipelineRun.root_task_id == root_id))
    return run if run is not None and run.status == "failure" and run.steps_not_run == 3 else None


def _steps_of(run_id: int) -> list[tuple]:
    """The run's steps as the recorder stored them, for a failure's message."""
    db.session.rollback()
    query = (
        select(RunStep, TaskExecution.status)
        .outerjoin(TaskExecution, TaskExecution.task_id == RunStep.task_id)
        .where(RunStep.run_id == run_id)
        .order_by(RunStep.id)
    )
    return [
        (step.task_id[:8], step.task_name, step.origin.value, (step.replaces_task_id or "")[:8],
         status.value if status else None)
        for step, status in db.session.execute(query)
    ]  # fmt: skip


def _no_overflow(page: Any, where: str) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{where} is {overflow}px wider than the window"


def screenshot_path(name: str) -> str:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS_DIR / f"{name}.png")


def _screens(page: Any, base: str, run_id: int, language: str) -> None:
    """The runs list, the failed run and the dashboard panel at 1366 px and phone width."""
    pages = {"runs": "/tasks/runs/", "run-failed": f"/tasks/runs/{run_id}/", "dashboard": "/tasks/"}
    for width, height, size in ((1366, 900, "desktop"), (390, 844, "phone")):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in pages.items():
            page.goto(f"{base}{path}")
            expect(page.locator("html")).to_have_attribute("lang", language)
            screenshot(page, f"{name}-{size}-{language}")
            _no_overflow(page, f"{name} ({language}, {width}px)")
            if name == "dashboard":
                panel = page.locator("#dashboard-runs")
                panel.scroll_into_view_if_needed()
                panel.screenshot(path=screenshot_path(f"dashboard-runs-{size}-{language}"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_failed_pipeline_run_resumed_from_its_page_turns_green(
    start_web: Callable[..., str],
    app: Flask,
    page: Any,
    users: Any,
    runner: Any,
    idmc_server: Any,
    start_worker: Callable[..., Any],
    start_recorder: Callable[..., Any],
) -> None:
    # The source refuses the retrieval for good: a 404 is not retried. (A 503 is, six times
    # with backoff; the schedule's retry override reaches only the message it sends, not the
    # chain steps its task sends, so it cannot shorten the retrieval's retries.)
    idmc_server.serve(IDU_PATH, (404, {"detail": "Not found."}))
    app.config["IDMC_API_URL"] = idmc_server.url
    start_recorder()
    start_worker(concurrency=2, IDMC_API_URL=idmc_server.url)
    base = start_web(IDMC_API_URL=idmc_server.url)
    assert runner.invoke(args=["setup-scheduled-tasks"]).exit_code == 0
    sent = runner.invoke(args=["schedules", "run", "idmc-daily-pipeline"])
    assert sent.exit_code == 0, sent.output
    run = wait_for(lambda: _failed_run(sent.output.split()[-1].rstrip(".")), timeout=90)

    sign_in(page, base)
    dashboard_row = page.locator("#dashboard-runs tr", has_text="idmc-daily-pipeline")
    expect(dashboard_row.locator(".run-status .status")).to_have_class("status status-failure")
    expect(dashboard_row.locator(".status").first).to_have_text("failing")  # the watch's state
    expect(
        dashboard_row.locator("code[title='data_pipeline.tasks.retrieve_source']")
    ).to_be_visible()
    expect(dashboard_row.locator("button:has-text('Resume from the failed step')")).to_be_visible()

    page.goto(f"{base}/tasks/runs/")
    expect(page.locator(f"#runs-table a[href='/tasks/runs/{run.id}/']")).to_be_visible()
    page.goto(f"{base}/tasks/runs/{run.id}/")
    live = page.locator("#run-live")
    expect(live.locator(".status").first).to_have_class("status status-failure")
    expect(live).not_to_have_attribute("data-hx-trigger", "every 3s")  # final: not polling
    steps = live.locator("tr.step")
    expect(steps).to_have_count(5)  # run_full_pipeline, then the variable's 4-step chain
    expect(live.locator("svg.run-bar rect.run-bar-failure")).to_have_count(1)
    not_run = live.locator("tr.step-not_run")
    expect(not_run).to_have_count(3)
    for index in range(3):
        expect(not_run.nth(index)).to_contain_text("not run")
        expect(not_run.nth(index)).to_contain_text("step retrieve_source failed")
    expect(live.locator("tr.step-error pre.traceback")).to_contain_text("PermanentRetrievalError")
    resume = live.locator("button:has-text('Resume from the failed step')")
    expect(resume).to_be_visible()
    screenshot(page, "run-failed")

    use_language(page, "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    _screens(page, base, run.id, "ar")
    page.goto(f"{base}/tasks/runs/{run.id}/")
    use_language(page, "en")
    _screens(page, base, run.id, "en")

    idmc_server.serve(IDU_PATH, (200, IDU_RECORDS))
    page.goto(f"{base}/tasks/runs/{run.id}/")
    page.locator("#run-live button:has-text('Resume from the failed step')").click()
    expect(page.locator(".flash-success")).to_contain_text("4 steps were sent again")
    mark_page(page)
    live = page.locator("#run-live")
    try:
        expect(live.locator(".status").first).to_have_class("status status-success", timeout=90_000)
    except AssertionError as error:
        raise AssertionError(f"the run stayed as stored: {_steps_of(run.id)}") from error
    assert_same_page(page)  # the page's own polling brought it
    # final again: polling stopped
    expect(live).not_to_have_attribute("data-hx-trigger", "every 3s")
    replaced = live.locator("tr.step-replaced")  # the failed step and the three that did not run
    expect(replaced).to_have_count(4)
    for index in range(4):
        expect(replaced.nth(index)).to_contain_text("replaced by")
    expect(live.locator("tr.step-success")).to_have_count(5)
    expect(live.locator("tr.step-not_run")).to_have_count(0)
    screenshot(page, "run-resumed")
    db.session.rollback()
    assert db.session.get(PipelineRun, run.id).status == "success"
