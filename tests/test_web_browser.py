"""Browser tests: headless Debian chromium driven by Playwright against a real web process.

Each test saves screenshots into tests/screenshots/ (git-ignored) for a reviewer, and fails on any
console error or warning, uncaught exception or Content-Security-Policy violation in the page.
"""

from __future__ import annotations

import uuid
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
    Alert,
    DeadLetter,
    Role,
    ScheduleRun,
    Source,
    TaskExecution,
    TaskStatus,
    Variable,
)
from app.models.types import utcnow
from app.scheduler.service import create_schedule
from app.services.rollups import add_counts, bucket_of
from app.services.statistics import window_start
from tests.conftest import PASSWORDS, PROJECT_DIR, screenshot
from tests.support import wait_for

pytestmark = pytest.mark.browser

FAST_POLL = {"LIVE_POLL_SECONDS": "1"}
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
    expect(page.locator("#dashboard-metrics")).to_have_attribute("hx-trigger", "every 1s")
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
    expect(live).to_have_attribute("hx-trigger", "every 3s")
    expect(live.locator(".status").first).to_have_class("status status-pending")
    mark_page(page)
    screenshot(page, "execution-pending")

    start_worker(queues="monitoring")
    expect(live.locator(".status").first).to_have_class("status status-success", timeout=40_000)
    assert_same_page(page)
    expect(live).not_to_have_attribute("hx-trigger", "every 3s")  # final: polling stopped
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


def test_arabic_is_right_to_left(live_server: str, page: Any, users: Any) -> None:
    sign_in(page, live_server)
    page.select_option("#language-select", "ar")
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "ar")
    assert page.url == f"{live_server}/tasks/"
    catalog = Translations.load(str(PROJECT_DIR / "translations"), ["ar"])
    expected = catalog.gettext("Dashboard")
    if expected != "Dashboard":  # the Arabic catalog translates it (compiled by scripts/install)
        expect(page.locator("nav.sections a").first).to_have_text(expected)
    screenshot(page, "dashboard-arabic")
    page.goto(f"{live_server}/tasks/executions/")
    expect(html).to_have_attribute("dir", "rtl")
    screenshot(page, "executions-arabic")


def sample_rows() -> dict[str, Any]:
    """One of each kind of row the pages show; returns the ids the detail pages need."""
    now = utcnow()
    failed = TaskExecution(
        task_id=str(uuid.uuid4()),
        task_name="data_pipeline.tasks.retrieve_source",
        status=TaskStatus.FAILURE,
        queue="data_retrieval",
        args=[3],
        kwargs={"full": True},
        started_at=now - timedelta(seconds=4),
        completed_at=now,
        error_message="ConnectionError: connection refused",
        traceback="Traceback (most recent call last):\n  ...\nConnectionError: connection refused",
    )
    source = Source(code="idmc", name="IDMC")
    letter = DeadLetter(
        task_id=failed.task_id,
        task_name=failed.task_name,
        queue="data_retrieval",
        args=[3],
        kwargs={},
        error_message="ConnectionError: connection refused",
    )
    db.session.add_all(
        [
            failed,
            source,
            Variable(source=source, code="idp", name="Internally displaced people"),
            Alert(kind="critical_failure", severity="critical", title="Retrieval failed"),
            letter,
        ]
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
