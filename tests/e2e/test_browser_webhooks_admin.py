"""The admin's webhooks in a real browser (Debian's chromium, Playwright): an admin adds a
webhook in the page (URL and events from the list the API accepts) and sees it listed
with its signing secret shown once; an endpoint the sender disabled after failed
deliveries is shown as disabled with the reason, its delivery log shows the failed
attempt and the response code, and it can be enabled again; one is removed. No page
reports a Content-Security-Policy violation."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Dialog

from config.settings import Settings
from control.models import Role
from control.notifications.worker import NotificationWorker
from support.browser import CHROMIUM, csp_violations, launch_chromium, sign_in
from support.page_school import PASSWORD, PageSchool, page_school
from support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
# Lets webhooks reach this machine, where the failing receiver listens.
LOOPBACK = "127.0.0.1/32"


def one_failure_disables(settings: Settings) -> Settings:
    return dataclasses.replace(settings, notifications=dataclasses.replace(
        settings.notifications, webhook_allowed_networks=LOOPBACK, webhook_failure_limit=1,
        delivery_max_attempts=1))


@pytest.fixture
async def school(tmp_path: Path) -> AsyncIterator[PageSchool]:
    people = {"admin": Role.ADMIN, "tess": Role.TEACHER, "sam": Role.STUDENT}
    async with page_school(tmp_path, people, one_failure_disables) as school:
        yield school


@pytest.fixture
async def failing() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as receiver:
        receiver.status = 500
        yield receiver


async def disabled_endpoint(school: PageSchool, receiver: Receiver) -> int:
    """An endpoint whose one delivery failed, so the sender disabled it."""
    made = await school.call("POST", "/webhooks", "admin",
                             {"url": receiver.url, "events": ["enrolment.active"]}, 201)
    receiver.secret = made["secret"]
    category = await school.call("POST", "/categories/", "admin", {"name": "Maths"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Algebra", "category_id": category["id"], "access_level": "public"}, 201)
    await school.call("POST", f"/courses/{course['id']}/enroll", "sam", None, 201)
    worker = NotificationWorker(school.settings, school.database)
    try:
        await worker.run_once()
    finally:
        await worker.close()
    [endpoint] = (await school.call("GET", "/webhooks", "admin"))["results"]
    assert endpoint["enabled"] is False and len(receiver.received) == 1
    return int(made["id"])


async def test_an_admin_adds_a_webhook_and_sees_a_disabled_one(
    school: PageSchool, failing: Receiver
) -> None:
    dead = await disabled_endpoint(school, failing)
    async with launch_chromium() as chromium:
        page = await chromium.new_page()
        refused = csp_violations(page)
        await sign_in(page, school.base, "admin", PASSWORD, "/admin")
        row = page.locator(f"#webhooks tr[data-webhook-id='{dead}']")
        await row.wait_for()
        assert await row.get_attribute("data-state") == "disabled"
        state = await row.locator(".state").text_content() or ""
        assert state.startswith("disabled") and "HTTP 500" in state, state
        assert await row.locator(".toggle").text_content() == "Enable"

        # Its delivery log: the one failed attempt, answered 500.
        await row.locator(".deliveries").click()
        entry = page.locator("#webhook-deliveries tbody tr")
        await entry.wait_for()
        assert await entry.count() == 1
        assert await entry.locator(".status").text_content() == "failed"
        assert await entry.locator(".attempts").text_content() == "1"
        assert await entry.locator(".code").text_content() == "500"

        # A new one, added in the page with two of the events the API lists.
        await page.fill("#webhook-url", "https://hooks.example.com/academia")
        await page.check("#webhook-events input[value='session.live']")
        await page.check("#webhook-events input[value='session.recording_ready']")
        await page.click("#new-webhook button[type=submit]")
        secret = page.locator("#webhook-secret code")
        await secret.wait_for()
        assert (await secret.text_content() or "").startswith("whsec_")
        added = page.locator("#webhooks tr[data-state='active']")
        await added.wait_for()
        assert await added.locator(".url").text_content() == "https://hooks.example.com/academia"
        assert await added.locator(".events").text_content() == (
            "session.live, session.recording_ready")
        assert await added.locator(".state").text_content() == "active"
        listed = (await school.call("GET", "/webhooks", "admin"))["results"]
        assert [(w["url"], w["events"], w["enabled"]) for w in listed][1:] == [
            ("https://hooks.example.com/academia", ["session.live", "session.recording_ready"],
             True)]

        # The disabled one, enabled again.
        await row.locator(".toggle").click()
        await page.wait_for_function(
            "(id) => document.querySelector(`#webhooks tr[data-webhook-id='${id}']`)"
            ".dataset.state === 'active'", arg=dead)
        [again] = [w for w in (await school.call("GET", "/webhooks", "admin"))["results"]
                   if w["id"] == dead]
        assert again["enabled"] is True and again["consecutive_failures"] == 0

        # The new one removed, once the admin confirms.
        async def confirm(dialog: Dialog) -> None:
            await dialog.accept()

        page.once("dialog", confirm)
        new = listed[1]["id"]
        await page.locator(f"#webhooks tr[data-webhook-id='{new}'] .delete").click()
        await page.wait_for_function(
            "() => document.querySelectorAll('#webhooks tbody tr').length === 1")
        listed = (await school.call("GET", "/webhooks", "admin"))["results"]
        assert [w["id"] for w in listed] == [dead]
        assert refused == []


async def test_the_webhooks_page_is_for_admins_alone(school: PageSchool) -> None:
    async with launch_chromium() as chromium:
        page = await chromium.new_page()
        await sign_in(page, school.base, "tess", PASSWORD, "/admin")
        await page.locator("#notice .notice.error").wait_for()
        assert await page.locator("#webhooks").count() == 0
