"""Notifications in a real browser (Debian's chromium, Playwright): a signed-in student
sees the unread count appear in the page header when their enrolment is decided, opens
the notifications page and marks one read, and the count goes down. The control app runs
on a real port; no page reports a Content-Security-Policy violation."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser

from config.loading import load_settings
from config.settings import Settings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import create_user
from control.app import build_app
from control.db.database import Database
from control.models import Role
from support.browser import CHROMIUM, csp_violations, launch_chromium, sign_in
from support.live_stack import free_port

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
PASSWORD = "student-password-1"


@dataclasses.dataclass
class School:
    base: str
    tokens: dict[str, str]
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, who: str, body: Any = None,
                   expect: int = 200) -> Any:
        async with self.http.request(method, self.base + path, json=body, headers={
                "Authorization": f"Bearer {self.tokens[who]}"}) as response:
            assert response.status == expect, await response.text()
            return await response.json()


@pytest.fixture
async def school(tmp_path: Path) -> AsyncIterator[School]:
    base = load_settings(environ={})
    port = free_port()
    settings: Settings = dataclasses.replace(
        base,
        server=dataclasses.replace(base.server, data_dir=tmp_path / "var", http_port=port),
        auth=dataclasses.replace(base.auth, password_time_cost=1, password_memory_cost_kib=64),
        # In-app notifications are written with the change itself: no sender needed here.
        notifications=dataclasses.replace(base.notifications, outbox_poll_seconds=0),
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'school.sqlite3'}")
    await database.create_all()
    passwords = Passwords(settings.auth)
    tokens: dict[str, str] = {}
    async with database.transaction(write=True) as db:
        for name, role in (("admin", Role.ADMIN), ("tess", Role.TEACHER),
                           ("sam", Role.STUDENT)):
            user = await create_user(db, passwords, username=name, password=PASSWORD,
                                     role=role)
            tokens[name], _ = await issue_token(db, user, 3600)
    passwords.close()
    runner = web.AppRunner(build_app(settings, database))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield School(settings.public_url, tokens, http)
    finally:
        await runner.cleanup()
        await database.close()


async def test_a_student_sees_a_notification_appear_and_marks_it_read(school: School) -> None:
    category = await school.call("POST", "/categories/", "admin", {"name": "Maths"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Group theory", "category_id": category["id"], "access_level": "private",
        "capacity": 10}, 201)
    async with launch_chromium() as chromium:
        await _student_session(chromium, school, course["id"])


async def _student_session(chromium: Browser, school: School, course_id: int) -> None:
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
