"""A recording resumes where it was left, in a real browser (Debian's chromium, Playwright)
against a whole node with a class pushed by ffmpeg: the student plays the recording,
moves to a later point and pauses; the player reports the position (the teacher's report
shows it), and the next time she opens the recording it starts there and says so."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from control.web.pages import STATIC_DIR
from support.browser import CHROMIUM, csp_violations, launch_chromium, sign_in, wait_playing
from support.live_stack import LiveStack, finished, publish_ffmpeg, stack_settings, wait_for

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]
PASSWORD = "student-password-1"
LEFT_AT = 12.0  # seconds into the recording where the student stops


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LiveStack]:
    assert (STATIC_DIR / "vendor" / "hls.min.js").exists(), "run `make assets` first"
    settings = stack_settings(tmp_path / "var")
    # Reports a second apart are all stored: the test need not wait out the write limit.
    settings = dataclasses.replace(
        settings, courses=dataclasses.replace(settings.courses, progress_write_seconds=1))
    async with LiveStack(settings) as live:
        yield live


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser


async def test_a_recording_resumes_where_it_was_left(
    stack: LiveStack, chromium: Browser
) -> None:
    base = stack.settings.public_url
    course = f"/learn/{stack.course_id}"
    ana = await stack.json("POST", "/users/", {"username": "ana", "password": PASSWORD,
                                               "role": "student"}, expect=201)
    await stack.json("POST", f"/courses/{stack.course_id}/enroll-student",
                     {"student_id": ana["id"]}, expect=201)
    # A class of about twenty seconds, recorded.
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=60, gop_seconds=2)
    session_id = await stack.live_session_id()
    await asyncio.sleep(20)
    await stack.json("POST", f"/courses/{stack.course_id}/end-live")
    await finished(publisher, within=15)
    await stack.recording_ready(session_id)

    page = await chromium.new_page()
    violations = csp_violations(page)
    await sign_in(page, base, "ana", PASSWORD, course)
    replay_button = f".recording[data-session-id='{session_id}'] .replay"
    await page.click(replay_button)
    await wait_playing(page, "#replay")
    assert await page.is_hidden("#resume-note")  # nothing to resume the first time
    await page.evaluate(f"document.querySelector('#replay video').currentTime = {LEFT_AT}")
    # A function, not an expression: the page's CSP forbids eval.
    await page.wait_for_function(
        "(after) => document.querySelector('#replay video').currentTime > after",
        arg=LEFT_AT + 1)
    await page.evaluate("document.querySelector('#replay video').pause()")
    left_at = await page.evaluate("document.querySelector('#replay video').currentTime")

    async def reported() -> dict[str, float] | None:
        rows = await stack.json("GET", f"/sessions/{session_id}/progress/report")
        row = next(r for r in rows if r["username"] == "ana")
        return row if row["position_seconds"] >= LEFT_AT else None

    row = await wait_for(reported, within=10, what="the paused position to be reported")
    assert abs(row["position_seconds"] - left_at) < 1.5, (row, left_at)

    # Next time: the recording starts where she left it, and the player says so.
    await page.reload()
    await page.click(replay_button)
    await page.wait_for_selector("#resume-note:not([hidden])")
    note = await page.text_content("#resume-note")
    assert note == f"Resumed at 0:{int(row['position_seconds']):02d}", note
    state = await wait_playing(page, "#replay", advance=0.5)
    assert state["time"] >= row["position_seconds"], state
    assert violations == []
