"""Browser tests: headless Debian chromium driven by Playwright against a real web process.

Each test saves screenshots into tests/screenshots/ (git-ignored) for a reviewer.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Role
from tests.conftest import PASSWORDS, screenshot

pytestmark = pytest.mark.browser


def sign_in(page: Any, base_url: str, role: Role = Role.OPERATOR) -> None:
    page.goto(f"{base_url}/tasks/login/")
    page.fill("input[name=username]", role.value)
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/tasks/")


def test_sign_in_reaches_the_dashboard(live_server: str, browser_page: Any, users: Any) -> None:
    page = browser_page
    page.goto(f"{live_server}/tasks/")
    assert "/tasks/login/" in page.url
    screenshot(page, "login")
    sign_in(page, live_server)
    assert page.locator("h1").first.is_visible()
    screenshot(page, "dashboard")
