"""The teacher's progress dashboard in a real browser (Debian's chromium, Playwright): a
course with an ended class whose recording is ready (told through the media edge's
in-process control port, no stream pushed) and students who watched different shares of
it through the API; the teacher's page shows each student's share and the course's
completion, and the completion CSV downloads with the right rows. No page reports a
Content-Security-Policy violation."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from control.api import progress as progress_api
from control.models import Role
from control.models.base import utcnow
from mediaserver.control_inprocess import InProcessControl
from support.browser import CHROMIUM, csp_violations, launch_chromium, sign_in
from support.frozen_time import Clock
from support.page_school import PASSWORD, PageSchool, page_school

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
DURATION = 100.0  # seconds of recording, as the players report it


@pytest.fixture
async def school(tmp_path: Path) -> AsyncIterator[PageSchool]:
    people = {"admin": Role.ADMIN, "tess": Role.TEACHER, "ana": Role.STUDENT,
              "ben": Role.STUDENT, "cy": Role.STUDENT}
    async with page_school(tmp_path, people) as school:
        yield school


async def recorded_course(school: PageSchool) -> tuple[int, int]:
    """A private course of tess with ana, ben and cy, and one ended, recorded class."""
    category = await school.call("POST", "/categories/", "admin", {"name": "Maths"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Topology", "category_id": category["id"], "access_level": "private"}, 201)
    for student in ("ana", "ben", "cy"):
        await school.call("POST", f"/courses/{course['id']}/enroll-student", "tess",
                          {"student_id": school.ids[student]}, 201)
    started = await school.call("POST", f"/courses/{course['id']}/start-live", "tess")
    await school.call("POST", f"/courses/{course['id']}/end-live", "tess")
    await InProcessControl(school.database, school.settings).recording_ready(
        started["session_id"])
    return int(course["id"]), int(started["session_id"])


async def watch(school: PageSchool, clock: Clock, session_id: int, who: str,
                until: float) -> None:
    """`who` plays the recording from its start to `until`, in time to count as watched
    (the server counts a step no faster than real time allows)."""
    clock.now = utcnow()
    await school.call("PUT", f"/sessions/{session_id}/progress", who,
                      {"position_seconds": 0, "duration_seconds": DURATION})
    clock.advance(seconds=until)
    saved = await school.call("PUT", f"/sessions/{session_id}/progress", who,
                              {"position_seconds": until, "duration_seconds": DURATION})
    assert saved["saved"] is True and saved["watched_seconds"] == until


async def cell(page: Page, table: str, username: str, column: str) -> str:
    return (await page.text_content(f"#{table} tr[data-username='{username}'] .{column}")
            or "").strip()


async def test_the_teacher_sees_who_watched_what_and_downloads_completion(
    school: PageSchool, monkeypatch: pytest.MonkeyPatch
) -> None:
    course_id, session_id = await recorded_course(school)
    await school.call("PATCH", f"/users/{school.ids['ana']}/", "admin",
                      {"display_name": "Ana Lima"})
    # The reports' clock: a minute of watching without waiting a minute.
    clock = Clock(utcnow())
    monkeypatch.setattr(progress_api, "utcnow", clock)
    await watch(school, clock, session_id, "ana", 95)  # past recording_watched_percent (90)
    await watch(school, clock, session_id, "ben", 25)

    async with launch_chromium() as chromium:
        page = await (await chromium.new_context(accept_downloads=True)).new_page()
        refused = csp_violations(page)
        await sign_in(page, school.base, "tess", PASSWORD, f"/teach?course={course_id}")
        await page.locator("#progress-watchers").wait_for()
        assert await page.input_value("#progress-session") == str(session_id)
        assert [await cell(page, "progress-watchers", who, "share-value")
                for who in ("ana", "ben", "cy")] == ["95%", "25%", "0%"]
        assert await cell(page, "progress-watchers", "ana", "name") == "Ana Lima (ana)"
        assert await cell(page, "progress-completion", "ana", "name") == "Ana Lima (ana)"
        assert await cell(page, "progress-watchers", "ben", "name") == "ben"
        bar = page.locator("#progress-watchers tr[data-username='ben'] progress")
        assert await bar.get_attribute("value") == "25"
        assert await cell(page, "progress-watchers", "ben", "position") == "0:25 of 1:40"
        assert await cell(page, "progress-watchers", "cy", "position") == "not started"

        # Completion: ana's watching counts as done, ben's quarter does not.
        assert await cell(page, "progress-completion", "ana", "done") == "1 of 1"
        assert await cell(page, "progress-completion", "ana", "watched") == "1"
        assert await cell(page, "progress-completion", "ana", "share-value") == "100%"
        assert await cell(page, "progress-completion", "ben", "done") == "0 of 1"
        assert await cell(page, "progress-completion", "ben", "share-value") == "0%"

        async with page.expect_download() as download_info:
            await page.click("#completion-csv")
        download = await download_info.value
        assert download.suggested_filename == f"course-{course_id}-completion.csv"
        saved = await download.path()
        text = await asyncio.to_thread(Path(saved).read_text)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["username"], r["sessions"], r["attended_live"], r["watched_recording"],
                 r["done"], r["completion_percent"]) for r in rows] == [
            ("ana", "1", "0", "1", "1", "100.0"),
            ("ben", "1", "0", "0", "0", "0.0"),
            ("cy", "1", "0", "0", "0", "0.0"),
        ]
        assert refused == []


async def test_a_course_without_recordings_says_so(school: PageSchool) -> None:
    category = await school.call("POST", "/categories/", "admin", {"name": "Art"}, 201)
    course = await school.call("POST", "/courses/", "tess", {
        "title": "Drawing", "category_id": category["id"], "access_level": "private"}, 201)
    async with launch_chromium() as chromium:
        page = await chromium.new_page()
        refused = csp_violations(page)
        await sign_in(page, school.base, "tess", PASSWORD, f"/teach?course={course['id']}")
        await page.locator("#progress-recordings").wait_for()
        assert "No ended class has a recording yet." in (
            await page.text_content("#progress-recordings") or "")
        assert "No student in this course yet." in (
            await page.text_content("#progress-course") or "")
        assert refused == []
