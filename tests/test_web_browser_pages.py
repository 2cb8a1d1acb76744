"""Browser tests of what issue #15 found on the pages: right-to-left code, failure pages, the
schedule form, cancelling. Same harness as tests/test_web_browser.py (headless Debian chromium, a
real web process, screenshots in tests/screenshots/).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Role, RunKind, ScheduleRun, TaskExecution, TaskStatus
from app.models.types import utcnow
from app.scheduler.service import create_schedule
from tests import factories
from tests.conftest import SCREENSHOTS_DIR, screenshot
from tests.test_web_browser import (
    Problems,
    assert_same_page,
    mark_page,
    sample_rows,
    sign_in,
    use_language,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser_page: Any) -> Iterator[Any]:
    """The browser page, watched for console errors and CSP violations (checked at test end)."""
    browser_page.problems = Problems(browser_page)
    yield browser_page
    browser_page.problems.check("at the end of the test")


# The x position on screen of each non-blank character of the first element matching the selector
# whose text is the given one, in the text's order.
CHARACTER_XS = """([selector, text]) => {
  const element = [...document.querySelectorAll(selector)].find(e => e.textContent.trim() === text);
  if (!element) return null;
  const node = document.createTreeWalker(element, NodeFilter.SHOW_TEXT).nextNode();
  const xs = [];
  for (let i = 0; i < node.data.length; i++) {
    if (!node.data[i].trim()) continue;
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    xs.push([node.data[i], range.getClientRects()[0].x]);
  }
  return xs;
}"""
# The lines of a <pre> that its scrolling box shows right now, whole or in part.
VISIBLE_LINES = """selector => {
  const pre = document.querySelector(selector);
  const box = pre.parentElement.getBoundingClientRect();
  const node = pre.firstChild;
  const lines = [];
  let start = 0;
  for (const line of node.data.split("\\n")) {
    const range = document.createRange();
    range.setStart(node, start);
    range.setEnd(node, start + Math.max(line.length, 0));
    const rect = range.getBoundingClientRect();
    if (line.length && rect.bottom > box.top && rect.top < box.bottom) lines.push(line);
    start += line.length + 1;
  }
  return lines;
}"""


# The space (px) above each card heading that follows other content in its card.
HEADING_GAPS = """() => Object.fromEntries([...document.querySelectorAll(".card > h3")]
  .filter(h => h.previousElementSibling)
  .map(h => {
    const above = h.previousElementSibling.getBoundingClientRect().bottom;
    return [h.textContent.trim(), h.getBoundingClientRect().top - above];
  }))"""


def reads_left_to_right(page: Any, selector: str, text: str) -> None:
    """The characters of ``text`` shown in ``selector`` stand in their order from left to right."""
    xs = page.evaluate(CHARACTER_XS, [selector, text])
    assert xs, f"no {selector} shows {text!r}"
    assert "".join(c for c, _ in xs) == text.replace(" ", ""), xs
    positions = [x for _, x in xs]
    assert positions == sorted(positions), f"{selector} is not shown left to right: {xs}"


# The focused element's outline colour and the backgrounds it is drawn against: the element's
# container (first ancestor with a background) and the page's body, as "rgb(r, g, b)" strings.
FOCUS_COLOURS = """() => {
  const focused = document.activeElement;
  const backdrop = element => {
    for (let e = element.parentElement; e; e = e.parentElement) {
      const colour = getComputedStyle(e).backgroundColor;
      if (colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent") return colour;
    }
    return "rgb(255, 255, 255)";
  };
  return {
    outline: getComputedStyle(focused).outlineColor,
    style: getComputedStyle(focused).outlineStyle,
    around: backdrop(focused),
    body: getComputedStyle(document.body).backgroundColor,
  };
}"""


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two "rgb(r, g, b)" colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_focus_ring_contrasts_with_the_page_and_the_top_bar(
    live_server: str, page: Any, users: Any
) -> None:
    sign_in(page, live_server)
    rows = sample_rows()
    page.goto(f"{live_server}/tasks/executions/{rows['execution']}/")
    seen: dict[str, float] = {}
    for _ in range(80):  # the skip link, the top bar, then every control of the page
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break  # past the last one
        colours = page.evaluate(FOCUS_COLOURS)
        name = page.evaluate(
            "document.activeElement.id || document.activeElement.textContent.trim().slice(0, 30)"
        )
        assert colours["style"] != "none", (name, colours)
        ratios = [contrast(colours["outline"], colours[key]) for key in ("around", "body")]
        seen[name] = round(min(ratios), 2)
        assert min(ratios) >= 3, f"focus ring of {name!r}: {ratios} against {colours}"
    assert "language-select" in seen and len(seen) > 10, seen
    screenshot(page, "focus-ring")


def test_language_select_walks_with_the_keyboard_and_keeps_the_focus(
    live_server: str, page: Any, users: Any, chromium: Any
) -> None:
    sign_in(page, live_server)
    page.goto(f"{live_server}/tasks/executions/")
    mark_page(page)
    select = page.locator("#language-select")
    select.focus()
    for _ in range(3):  # en -> fr -> es -> ar: each step is a change event, none submits
        page.keyboard.press("ArrowDown")
    expect(select).to_have_value("ar")
    assert_same_page(page)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.keyboard.press("Enter")  # the explicit action
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    assert page.url.endswith("/tasks/executions/")
    expect(select).to_be_focused()  # engine.js gives the focus back once the page is loaded
    screenshot(page, "language-keyboard-ar")

    mark_page(page)
    select.select_option("fr")  # a change with no pointer behind it: nothing happens yet
    assert_same_page(page)
    page.click("#language-apply")  # the button beside it, always shown
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("#language-apply")).to_be_focused()

    select.dispatch_event("pointerdown")  # a pointer opened the list and picked an option
    select.select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    context = chromium.new_context(java_script_enabled=False, locale="en-GB")
    try:
        plain = context.new_page()
        sign_in(plain, live_server)
        plain.select_option("#language-select", "es")
        plain.click("#language-apply")
        expect(plain.locator("html")).to_have_attribute("lang", "es")
    finally:
        context.close()


def test_code_values_read_left_to_right_in_arabic(live_server: str, page: Any, users: Any) -> None:
    rows = sample_rows()
    sign_in(page, live_server, Role.ADMIN)
    for language in ("en", "ar"):
        use_language(page, language)
        page.goto(f"{live_server}/tasks/scheduled/")
        reads_left_to_right(page, "table.schedules code", "0 2 * * *")
        screenshot(page, f"rtl-scheduled-{language}")
        page.goto(f"{live_server}/tasks/scheduled/{rows['schedule']}/")
        reads_left_to_right(page, "dl code", "task_monitoring.tasks.health_check")
        reads_left_to_right(page, "dl code", "{}")
        gaps = page.evaluate(HEADING_GAPS)
        assert gaps and min(gaps.values()) >= 12, gaps  # "Last run" off the list above it
        screenshot(page, f"rtl-scheduled-detail-{language}")
        page.goto(f"{live_server}/tasks/executions/{rows['execution']}/")
        reads_left_to_right(page, "pre.error-text", "ConnectionError: connection refused")
        screenshot(page, f"rtl-execution-{language}")
        page.goto(f"{live_server}/tasks/executions/")
        screenshot(page, f"rtl-executions-{language}")
        page.goto(f"{live_server}/tasks/")
        screenshot(page, f"rtl-dashboard-{language}")
        page.goto(f"{live_server}/tasks/dead-letters/{rows['letter']}/")
        reads_left_to_right(page, "pre", "ConnectionError: connection refused")
        screenshot(page, f"rtl-dead-letter-{language}")


def typed_left_to_right(page: Any, ids: list[str]) -> None:
    """The inputs ``ids`` (code: crontab, JSON, names) show their text left to right."""
    directions = page.evaluate(
        "ids => ids.map(id => getComputedStyle(document.getElementById(id)).direction)", ids
    )
    assert directions == ["ltr"] * len(ids), dict(zip(ids, directions, strict=True))


CHAIN_EXAMPLE = '[{"task": "location.tasks.match_locations", "kwargs": {}}]'


def test_schedule_form_code_reads_left_to_right_in_arabic(
    live_server: str, page: Any, users: Any
) -> None:
    sign_in(page, live_server)
    use_language(page, "ar")
    page.goto(f"{live_server}/tasks/scheduled/new/")
    reads_left_to_right(page, "small.hint code", "30 6 * * 1-5")  # the hints' examples
    reads_left_to_right(page, "small.hint code", CHAIN_EXAMPLE)
    typed_left_to_right(page, ["crontab", "timezone", "args", "kwargs", "chain", "task"])
    page.fill("#name", "rtl")
    page.select_option("#kind", "crontab")
    page.fill("#crontab", "61 * * * *")
    page.locator("button.primary[type=submit]").first.click()
    expect(page.locator("#crontab-errors li")).to_have_count(1)
    page.problems.seen.clear()  # the browser logs the form's 422 answer: expected here
    reads_left_to_right(page, "#crontab-errors bdi", "'61 * * * *'")  # the value in the error
    screenshot(page, "schedule-form-error-ar")
    page.goto(f"{live_server}/tasks/executions/")
    typed_left_to_right(page, ["task_name", "queue"])
    page.goto(f"{live_server}/tasks/runs/")
    typed_left_to_right(page, ["task_name"])


FINAL = "app.tracking.policies.TransientNetworkError: cannot reach example.org"


def long_traceback() -> str:
    """120 library frames, then the project's frame and the final exception."""
    library = [f'  File "/usr/lib/python3/lib/m{i}.py", line {i}, in f{i}' for i in range(120)]
    project = '  File "/srv/app/pipeline/retrieval.py", line 70, in fetch'
    return "\n".join(["Traceback (most recent call last):", *library, project, FINAL])


def test_failure_page_opens_the_traceback_at_its_end(
    live_server: str, page: Any, users: Any
) -> None:
    rows = sample_rows()
    query = select(TaskExecution).where(TaskExecution.task_id == rows["execution"])
    execution = db.session.scalar(query)
    execution.traceback = long_traceback()
    execution.error_message = FINAL
    db.session.commit()
    sign_in(page, live_server)
    page.goto(f"{live_server}/tasks/executions/{rows['execution']}/")
    box = page.locator(".scroll-end")
    shown = box.bounding_box()
    seen = page.evaluate(VISIBLE_LINES, ".scroll-end pre")
    assert shown["height"] < 600 and seen, shown
    assert seen[-1] == FINAL, seen
    assert '  File "/srv/app/pipeline/retrieval.py", line 70, in fetch' in seen
    assert "Traceback (most recent call last):" not in seen
    box.screenshot(path=str(SCREENSHOTS_DIR / "traceback-end.png"))
    page.goto(f"{live_server}/tasks/executions/")
    cell = page.locator("td.error-cell").first
    expect(cell).to_have_text("TransientNetworkError: cannot reach example.org")
    assert cell.bounding_box()["width"] > 150


def in_line_with(page: Any, names: tuple[str, ...], reference: str) -> None:
    """The inputs ``names`` stay within the left and right edges of the ``reference`` input (a
    full-width field of the same box), 1 px slack: nothing sticks out of the column."""
    edges = page.evaluate(
        """names => Object.fromEntries(names.map(name => {
          const r = document.getElementById(name).getBoundingClientRect();
          return [name, [r.left, r.right]];
        }))""",
        [reference, *names],
    )
    left, right = edges.pop(reference)
    for name, (start, end) in edges.items():
        assert left - 1 <= start and end <= right + 1, (name, (start, end), (left, right))


def test_schedule_form_clears_fixed_errors_and_keeps_inputs_in_their_box(
    live_server: str, page: Any, users: Any
) -> None:
    sign_in(page, live_server)
    page.goto(f"{live_server}/tasks/scheduled/new/")
    page.fill("#name", "Errors that go away")
    page.select_option("#kind", "crontab")
    page.fill("#crontab", "61 * * * *")
    page.get_by_role("button", name="Save").click()
    errors = page.locator("#crontab-errors li")
    expect(errors).to_have_count(1)
    expect(page.locator("#crontab")).to_have_attribute("aria-invalid", "true")
    page.problems.seen.clear()  # the browser logs the form's 422 answer: expected here
    screenshot(page, "schedule-form-saved-with-error")

    page.fill("#crontab", "")
    page.locator("#crontab").press_sequentially("*/5 * * * *")
    expect(page.locator("#schedule-preview table.preview-times tbody tr")).to_have_count(5)
    expect(errors).to_have_count(0)
    expect(page.locator("#crontab")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field.has-error")).to_have_count(0)
    screenshot(page, "schedule-form-fixed")

    page.select_option("#kind", "interval")
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        paired = ("interval_every", "interval_unit", "start_at", "expires_at")
        in_line_with(page, paired, "timezone")
        screenshot(page, f"schedule-form-{width}")


# Each scrolling table box whose content is wider than the box: [id or class, content, box] px.
OVERFLOWING_TABLES = """() => [...document.querySelectorAll(".table-wrap")]
  .filter(w => w.scrollWidth > w.clientWidth + 1)
  .map(w => [w.id || w.className, w.scrollWidth, w.clientWidth])"""
# The left edge (px) of the first character of a code value, and of the table cell around it.
FIRST_CHARACTER_AND_CELL = """selector => {
  const code = document.querySelector(selector);
  const range = document.createRange();
  range.setStart(code.firstChild, 0);
  range.setEnd(code.firstChild, 1);
  return [range.getBoundingClientRect().left, code.closest("td").getBoundingClientRect().left];
}"""
LONG_ERROR = (
    "app.tracking.policies.TransientNetworkError: cannot reach helix-tools-api.idmcdb.org: "
    "gaierror: [Errno -2] Name or service not known (GET https://helix-tools-api.idmcdb.org/"
    "external-api/idus/last-180-days/)"
)


def test_a_failing_schedule_and_long_errors_keep_every_column_in_view_at_1366_px(
    live_server: str, page: Any, users: Any
) -> None:
    """The watch's reason and a dotted error name have no space to wrap at: without care they
    widen the schedules and executions tables until the row actions and the Error column
    scroll out of view."""
    schedule = create_schedule(
        name="idmc-daily-pipeline", task="data_pipeline.tasks.run_full_pipeline",
        kind="crontab", crontab="0 6 * * *",
    )  # fmt: skip
    now = utcnow()
    occurrence = now.replace(hour=6, minute=0, second=0, microsecond=0)
    if occurrence > now:
        occurrence -= timedelta(days=1)
    task_id = str(uuid.uuid4())
    db.session.add(
        ScheduleRun(
            schedule_id=schedule.id, occurrence=occurrence, kind=RunKind.CATCHUP,
            task_id=task_id, sent_at=now,
        )
    )  # fmt: skip
    factories.execution(
        task_id=task_id, status=TaskStatus.FAILURE, created_at=now, started_at=now,
        completed_at=now, error_message=LONG_ERROR, retry_count=6, args=None, kwargs=None,
    )  # fmt: skip
    db.session.commit()
    sign_in(page, live_server, Role.ADMIN)
    page.set_viewport_size({"width": 1366, "height": 900})
    for language in ("en", "ar"):
        use_language(page, language)
        page.goto(f"{live_server}/tasks/scheduled/")
        expect(page.locator(f"#schedule-{schedule.id} .watch-reason")).to_be_visible()
        assert page.evaluate(OVERFLOWING_TABLES) == [], language
        run_now = page.locator(f"#schedule-{schedule.id} .row-actions button").last
        box, width = run_now.bounding_box(), 1366
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (language, box)
        first, cell = page.evaluate(
            FIRST_CHARACTER_AND_CELL, f"#schedule-{schedule.id} td.truncate code"
        )
        assert first >= cell, (language, first, cell)  # a cut name shows its start, not its end
        screenshot(page, f"scheduled-failing-1366-{language}")
        page.goto(f"{live_server}/tasks/executions/")
        assert page.evaluate(OVERFLOWING_TABLES) == [], language
        screenshot(page, f"executions-long-error-1366-{language}")
