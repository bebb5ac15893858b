"""Going live from the teacher's dashboard in a real browser: headless chromium with its
fake camera and microphone publishes over WHIP to a whole node, and a student watches.

The teacher signs in, opens their course on /teach and clicks "Go live from this
browser": the page makes a "browser" stream key (never shown), offers host candidates
that work on loopback (IP addresses, no mDNS names), and the course goes live with an
H.264 input and its renditions; a student in another browser context plays the class on
/learn/{id}. "Stop" ends the publish; after the grace period the session ends with its
recording. Live again, "End class" on the dashboard cuts the browser off and the page
says so. Clicking again while OBS (ffmpeg over RTMP) carries the class rotates the
same key and shows the server's 409 message. A screenshot of the teacher's page while
live is saved under test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request

from control.web.pages import STATIC_DIR
from support.browser import (
    CHROMIUM,
    csp_violations,
    launch_chromium,
    screenshot,
    sign_in,
    wait_playing,
)
from support.live_stack import LiveStack, finished, publish_ffmpeg, stack_settings, wait_for

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]
PASSWORD = "golive-password-1"
GRACE_SECONDS = 3


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LiveStack]:
    assert (STATIC_DIR / "vendor" / "hls.min.js").exists(), "run `make assets` first"
    # Host candidates on loopback only, as in test_whip: chromium reaches them on this host.
    settings = stack_settings(tmp_path / "var", whip_ice_addresses="127.0.0.1",
                              whip_video_kbps=1000, reconnect_grace_seconds=GRACE_SECONDS)
    async with LiveStack(settings) as live:
        yield live


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with launch_chromium(fake_media=True) as browser:
        yield browser


async def teacher_course(stack: LiveStack) -> int:
    """A public course taught by "tess" (a teacher, not an admin)."""
    category = await stack.json("POST", "/categories/", {"name": "Chemistry"}, expect=201)
    tess = await stack.json("POST", "/users/", {"username": "tess", "password": PASSWORD,
                                                "role": "teacher"}, expect=201)
    course = await stack.json("POST", "/courses/", {
        "title": "Chemistry live", "category_id": category["id"], "teacher_id": tess["id"],
        "access_level": "public"}, expect=201)
    await stack.json("POST", "/users/", {"username": "sam", "password": PASSWORD,
                                         "role": "student"}, expect=201)
    return int(course["id"])


def candidate_addresses(sdp: str) -> list[str]:
    """The connection address of each ICE candidate in an SDP."""
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def browser_keys(stack: LiveStack, course_id: int) -> list[dict[str, Any]]:
    keys = (await stack.json("GET", f"/courses/{course_id}/stream-keys"))["results"]
    return [k for k in keys if k["label"] == "browser"]


async def click_go_live(page: Page) -> tuple[str, str]:
    """Click the button; (the key the page got from the API, the offer it POSTed)."""
    offers: list[str] = []

    def offer(request: Request) -> None:
        if request.method == "POST" and "/whip/" in request.url:
            offers.append(request.post_data or "")

    page.on("request", offer)
    async with page.expect_response(
        lambda r: r.request.method == "POST" and "stream-key" in r.url
    ) as key_response:
        await page.click("#golive-start")
    key = str((await (await key_response.value).json())["key"])
    await wait_for(lambda: offers, within=15, what="the WHIP offer")
    page.remove_listener("request", offer)
    return key, offers[0]


async def test_a_teacher_goes_live_from_the_browser_and_a_student_watches(
    stack: LiveStack, chromium: Browser,
) -> None:
    base = stack.settings.public_url
    course_id = await teacher_course(stack)
    assert await browser_keys(stack, course_id) == []

    teacher = await (await chromium.new_context(viewport={"width": 1100, "height": 1000})
                     ).new_page()
    # The page's Content-Security-Policy must allow all it does (camera, WebRTC, WHIP).
    refused = csp_violations(teacher)
    await sign_in(teacher, base, "tess", PASSWORD, f"/teach?course={course_id}")
    await teacher.wait_for_selector("#golive[data-state=idle]")
    help_text = await teacher.text_content("#golive") or ""
    assert "simulcast off" in help_text and "STUN" in help_text

    key, offer = await click_go_live(teacher)
    # The page made a "browser" key for itself, and shows it nowhere.
    assert [k["active"] for k in await browser_keys(stack, course_id)] == [True]
    # Every candidate was gathered before the POST (no trickle), as IP addresses that
    # work on this host: no mDNS `.local` names aiortc could not resolve.
    addresses = candidate_addresses(offer)
    assert addresses and not any(a.endswith(".local") for a in addresses)
    assert all(re.fullmatch(r"[\d.]+|[0-9a-f:]+", a) for a in addresses), addresses
    assert "a=simulcast" not in offer

    await teacher.wait_for_selector("#golive[data-state=live]", timeout=20_000)
    assert await teacher.text_content("#golive-status") == "Live from this browser."
    # The local preview shows the camera, muted.
    preview = await teacher.eval_on_selector(
        "#golive-preview", "v => ({muted: v.muted, width: v.videoWidth})")
    assert preview["muted"] and preview["width"] > 0
    assert key not in await teacher.content()

    # The course is live from the browser: an H.264 input, its renditions.
    session_id = await stack.live_session_id(course_id=course_id)

    async def transcoding() -> dict[str, Any] | None:
        stream = (await stack.live_status(course_id)).get("stream") or {}
        input_ = stream.get("input") or {}
        return stream if input_.get("video_codec") and stream.get("renditions") else None

    stream = await wait_for(transcoding, within=30, what="the browser's stream to transcode")
    assert stream["publisher_connected"]
    assert stream["input"]["video_codec"] == "h264" and stream["input"]["audio_codec"] == "aac"
    assert stream["input"]["width"] > 0
    names = [r["name"] for r in stream["renditions"]]
    assert "mobile" in names and "audio" in names
    await teacher.wait_for_selector("#live-summary .badge.live", timeout=15_000)
    await screenshot(teacher, "golive-teacher.png")

    # A student, in a browser context of their own, watches the class.
    student = await (await chromium.new_context()).new_page()
    await sign_in(student, base, "sam", PASSWORD, f"/learn/{course_id}")
    watched = await wait_playing(student, timeout_ms=45_000)
    assert watched["state"] == "playing" and watched["width"] > 0
    assert refused == []

    # Stop: the publish ends at once, the class after the grace period, with its recording.
    await teacher.click("#golive-stop")
    await teacher.wait_for_selector("#golive[data-state=stopped]")
    assert await teacher.text_content("#golive-status") == "Stopped."
    assert await teacher.eval_on_selector("#golive-preview", "v => v.srcObject") is None
    node = stack.node
    assert node is not None
    await wait_for(lambda: node.whip.publishers == [], within=5, what="the publish to end")
    session = await stack.recording_ready(session_id, within=60)
    assert session["status"] == "ended"
    assert not (await stack.live_status(course_id))["is_live"]

    # Live again; "End class" on the dashboard cuts the browser off, and the page says so.
    teacher.on("dialog", lambda dialog: dialog.accept())
    await click_go_live(teacher)
    await teacher.wait_for_selector("#golive[data-state=live]", timeout=20_000)
    await stack.live_session_id(course_id=course_id)
    await teacher.click("#end-live")
    await teacher.wait_for_selector("#golive[data-state=error]", timeout=40_000)
    stopped = await teacher.text_content("#golive-status")
    assert stopped == "The broadcast stopped: the class was ended."
    await wait_for(lambda: node.whip.publishers == [], within=5, what="the publish to end")

    # OBS now carries the class: going live again rotates the same "browser" key and
    # shows the server's refusal.
    obs_key = await stack.json("POST", f"/courses/{course_id}/stream-keys", {"label": "OBS"},
                               expect=201)
    obs = await publish_ffmpeg(stack.rtmp_url_for(obs_key["key"]), seconds=60,
                               size="640x360", gop_seconds=2)
    try:
        await stack.live_session_id(course_id=course_id)
        second_key, _ = await click_go_live(teacher)
        await teacher.wait_for_selector("#golive[data-state=error]", timeout=20_000)
        refusal = await teacher.text_content("#golive-status")
        assert refusal == "this course is already live from another encoder"
        assert second_key != key
        assert [k["active"] for k in await browser_keys(stack, course_id)] == [True]
        assert node.whip.publishers == []
    finally:
        await stack.json("POST", f"/courses/{course_id}/end-live")
        await finished(obs, within=15)
