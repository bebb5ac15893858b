"""Notifications in a real browser (Debian's chromium, Playwright): a signed-in student
sees the unread count appear in the page header when their enrolment is decided, opens
the notifications page and marks one read, and the count goes down. The control app runs
on a real port; no page reports a Content-Security-Policy violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from control.models import Role
from support.browser import CHROMIUM, csp_violations, launch_chromium, sign_in
from support.page_school import PASSWORD, PageSchool, page_school

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


@pytest.fixture
async def school(tmp_path: Path) -> AsyncIterator[PageSchool]:
    # In-app notifications are written with the change itself: no sender needed here.
    people = {"admin": Role.ADMIN, "tess": Role.TEACHER, "sam": Role.STUDENT}
    async with page_school(tmp_path, people) as school:
        yield school


async def test_a_student_sees_a_notification_appear_and_marks_it_read(school: PageSchool) -> None:
    category = await school.call("POST", "/categories/", "admin", {"name": "Maths"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Group theory", "category_id": category["id"], "access_level": "private",
        "capacity": 10}, 201)
    async with launch_chromium() as chromium:
        await _student_session(chromium, school, course["id"])


async def _student_session(chromium: Browser, school: PageSchool, course_id: int) -> None:
    base = school.base
    page = await (await chromium.new_context()).new_page()
    refused = csp_violations(page)
    await sign_in(page, base, "sam", PASSWORD, "/")
    badge = page.locator("#unread")
    await page.locator("#notifications-link").wait_for()
    assert await badge.is_hidden()

    # Elsewhere, the student asks for a place and the teacher approves it.
    asked = await school.call("POST", f"/courses/{course_id}/enroll", "sam", None, 201)
    await school.call("POST", f"/enrollments/{asked['id']}/approve", "tess")
    # The header's poll shows the count without reloading the page.
    await page.wait_for_function(
        "() => document.getElementById('unread').textContent === '2'", timeout=25_000)
    assert await badge.is_visible()

    await page.click("#notifications-link")
    await page.wait_for_url(f"{base}/notifications")
    newest = page.locator("#notifications li").first
    await newest.wait_for()
    assert "Your place in Group theory was approved" in (await newest.text_content() or "")
    assert await newest.get_attribute("data-read") == "false"
    await newest.locator("button.mark-read").click()
    await page.wait_for_function(
        "() => document.querySelector('#notifications li').dataset.read === 'true'")
    await page.wait_for_function("() => document.getElementById('unread').textContent === '1'")
    mine = await school.call("GET", "/me/notifications", "sam")
    assert mine["unread"] == 1 and mine["results"][0]["read_at"] is not None
    assert refused == []
