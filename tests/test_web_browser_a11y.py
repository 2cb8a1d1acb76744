"""Every HTML page, in English and in Arabic, with rows on it: zero axe-core violations and zero
Nu HTML Checker errors; on a 390 px phone, nothing wider than the screen and zero axe violations
(a table that scrolls sideways there must be reachable by keyboard).

axe-core 4.14 runs inside each loaded page; the page's HTML after load (``page.content()``) goes
to the Nu HTML Checker (vnu.jar) in one Java call for all pages. Both come from the npm registry
into .tools/ (scripts/ensure-a11y-tools, run by scripts/test and .ci/run) and run offline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for

from app.extensions import db
from app.models import (
    AuditEntry,
    Role,
    ScheduleRun,
    TaskType,
    User,
    Variable,
)
from app.models.schedule import RunKind
from app.models.types import utcnow
from app.services.backfill import ACTION as BACKFILL
from app.services.tokens import create_token
from tests import factories
from tests.conftest import PROJECT_DIR, screenshot
from tests.test_web_browser import sample_rows, sign_in, use_language
from tests.test_web_runs import run_story

pytestmark = pytest.mark.browser

TOOLS = PROJECT_DIR / ".tools" / "node_modules"
AXE = TOOLS / "axe-core" / "axe.min.js"
VNU = TOOLS / "vnu-jar" / "build" / "dist" / "vnu.jar"
LANGUAGES = ("en", "ar")

# GET routes that answer no HTML page of their own, and why they are not walked.
NOT_PAGES = {
    "static": "files",
    "metrics": "Prometheus text",
    "root": "a redirect to the dashboard",
    "auth.login": "walked signed out (signed in, it sends the reader on)",
    "web.executions_export": "a CSV or JSON download",
    "web.scheduled_preview": "a fragment of the schedule form (shown inside its pages)",
}
FRAGMENT_PREFIXES = ("api_", "api-docs.", "web.dashboard_")  # the JSON API; polled panels

OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
# The violations axe finds in the page: rule, impact, help and the first elements it names.
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    rule: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
  }));
}"""


@pytest.fixture
def checkers() -> tuple[str, Path]:
    """axe-core's script and the path of vnu.jar (installed now if npm can); skipped, saying
    why, only where npm or java is missing."""
    if not (AXE.exists() and VNU.exists()):
        subprocess.run([str(PROJECT_DIR / "scripts" / "ensure-a11y-tools")], check=True)
    missing = [str(path) for path in (AXE, VNU) if not path.exists()]
    if missing or not shutil.which("java"):
        pytest.skip(
            f"accessibility checkers unavailable ({', '.join(missing) or 'java'} missing): "
            "scripts/ensure-a11y-tools installs axe-core and vnu-jar with npm; vnu needs java"
        )
    return AXE.read_text(), VNU


@pytest.fixture
def checked_page(chromium: Any) -> Iterator[Any]:
    """A page whose Content-Security-Policy lets the test inject axe (the app's own pages are
    checked against their CSP by tests/test_web_browser.py)."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", bypass_csp=True
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def every_kind_of_row(users: dict[Role, User]) -> dict[str, Any]:
    """Rows for every list and detail page; the values of the routes' URL arguments."""
    rows = sample_rows()  # a failed execution, a schedule, a dead letter, an alert, a source
    now = utcnow()
    done = factories.execution(
        task_name="task_monitoring.tasks.health_check",
        queue="default",
        args=[],
        kwargs={"deep": True},
        result={"healthy": True, "checks": ["redis", "database"]},
        started_at=now,
        completed_at=now,
    )
    db.session.add(
        ScheduleRun(
            schedule_id=rows["schedule"],
            occurrence=now.replace(microsecond=0),
            kind=RunKind.SCHEDULED,
            task_id=done.task_id,
            sent_at=now,
        )
    )
    task_type = db.session.scalar(db.select(TaskType)) or TaskType(name="retrieval")
    db.session.add(task_type)
    create_token(users[Role.OPERATOR], name="nightly export", actor=users[Role.ADMIN])
    backfill = AuditEntry(
        actor_id=users[Role.OPERATOR].id,
        actor_name=users[Role.OPERATOR].username,
        action=BACKFILL,
        target_type="schedule",
        target_id=str(rows["schedule"]),
        details={"start": (now - timedelta(hours=6)).isoformat(), "end": now.isoformat(),
                 "timezone": "UTC", "chosen": 1, "skipped": 0, "task_ids": [done.task_id]},
    )  # fmt: skip
    db.session.add(backfill)
    db.session.commit()
    _, run = run_story(fail_at=1, schedule_id=rows["schedule"])
    variable = db.session.scalar(db.select(Variable))
    return {
        "succeeded": done.task_id,
        "task_id": rows["execution"],
        "schedule_id": rows["schedule"],
        "letter_id": rows["letter"],
        "run_id": run.id,
        "source_id": variable.source_id,
        "variable_id": variable.id,
        "type_id": task_type.id,
        "task_name": done.task_name,
        "backfill_id": backfill.id,
    }


def every_page(app: Flask, arguments: dict[str, Any]) -> dict[str, str]:
    """Name and path of every GET route that renders an HTML page, filled with sample rows."""
    pages = {}
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            endpoint = rule.endpoint
            if "GET" not in rule.methods or endpoint in NOT_PAGES:
                continue
            if endpoint.startswith(FRAGMENT_PREFIXES):
                continue
            unknown = rule.arguments - arguments.keys()
            assert not unknown, f"{rule}: add sample rows for {sorted(unknown)}"
            pages[endpoint] = url_for(endpoint, **{a: arguments[a] for a in rule.arguments})
        pages["execution-success"] = url_for("web.execution_detail", task_id=arguments["succeeded"])
    pages["not-found"] = "/tasks/executions/no-such-task/"
    return pages


def check_page(page: Any, axe: str, where: str, language: str) -> list[str]:
    """axe's violations in the loaded page, one line each."""
    assert page.locator("html").get_attribute("lang") == language, where
    page.evaluate(axe)
    return [
        f"{where}: {v['rule']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in page.evaluate(RUN_AXE)
    ]


def nu_errors(documents: dict[str, str], folder: Path, vnu: Path) -> list[str]:
    """The Nu HTML Checker's errors in the documents, by name: one Java process for all."""
    for name, html in documents.items():
        (folder / f"{name}.html").write_text(html, encoding="utf-8")
    command = ["java", "-jar", str(vnu), "--errors-only", "--format", "json", "--exit-zero-always"]
    done = subprocess.run(
        [*command, *(str(folder / f"{n}.html") for n in documents)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    messages = json.loads(done.stderr)["messages"]
    return [
        f"{m.get('url', '').rsplit('/', 1)[-1]}:{m.get('lastLine')}: {m['message']} "
        f"[{m.get('extract', '').strip()[:120]}]"
        for m in messages
    ]


def test_every_page_is_accessible_and_valid_html_in_english_and_arabic(
    app: Flask,
    live_server: str,
    checked_page: Any,
    chromium: Any,
    users: dict[Role, User],
    checkers: tuple[str, Path],
    tmp_path: Path,
) -> None:
    axe, vnu = checkers
    pages = every_page(app, every_kind_of_row(users))
    violations: list[str] = []
    documents: dict[str, str] = {}
    page = checked_page

    def visit(name: str, path: str, language: str, status: int = 200) -> None:
        response = page.goto(f"{live_server}{path}")
        assert response.status == status, f"{path}: {response.status}"
        assert response.headers["content-type"].startswith("text/html"), path
        violations.extend(check_page(page, axe, f"{language} {path}", language))
        documents[f"{language}-{name}"] = page.content()
        screenshot(page, f"a11y-{language}-{name}")

    def on_a_phone(name: str, path: str, language: str) -> None:
        """At 390 px: nothing wider than the screen, and what scrolls sideways is reachable."""
        page.goto(f"{live_server}{path}")
        overflow = page.evaluate(OVERFLOW)
        assert overflow <= 0, f"{language} {path} is {overflow}px wider than a 390px phone"
        violations.extend(check_page(page, axe, f"{language} {path} (390px)", language))

    for language in LANGUAGES:  # the sign-in page, in the browser's language
        context = chromium.new_context(locale=language, bypass_csp=True)
        page = context.new_page()
        visit("login", "/tasks/login/", language)
        context.close()
    page = checked_page
    sign_in(page, live_server, Role.ADMIN)
    for language in LANGUAGES:
        page.set_viewport_size({"width": 1280, "height": 900})
        use_language(page, language)
        for name, path in pages.items():
            visit(name, path, language, 404 if name == "not-found" else 200)
        page.set_viewport_size({"width": 390, "height": 844})
        for name, path in pages.items():
            on_a_phone(name, path, language)

    assert len(documents) == 2 * (len(pages) + 1)
    errors = nu_errors(documents, tmp_path, vnu)
    assert not violations, "axe-core:\n" + "\n".join(violations)
    assert not errors, f"Nu HTML Checker, {len(errors)} errors:\n" + "\n".join(errors[:60])


def test_the_checkers_see_what_they_are_meant_to(
    live_server: str, checked_page: Any, checkers: tuple[str, Path], tmp_path: Path
) -> None:
    """A page with the two faults issue #15 found reports them: the checks above can fail."""
    axe, vnu = checkers
    page = checked_page
    page.goto(f"{live_server}/tasks/login/")
    page.evaluate(
        """() => {
          const pre = document.createElement("pre");
          pre.style.cssText = "max-height: 2rem; overflow: auto";
          pre.textContent = "line\\n".repeat(40);
          document.querySelector("main").append(pre);
          document.body.setAttribute("hx-get", "/tasks/");
        }"""
    )
    found = check_page(page, axe, "login", "en")
    assert any("scrollable-region-focusable" in line for line in found), found
    errors = nu_errors({"faulty": page.content()}, tmp_path, vnu)
    assert any("hx-get" in error for error in errors), errors
