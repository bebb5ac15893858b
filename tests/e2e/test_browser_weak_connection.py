"""A weak connection in a real browser (issue 11): the student's player falls back to a
lower rung without stalling.

Headless chromium (Debian's) plays the demo class, pushed by ffmpeg at 720p through the
full ladder, on the course page, hls.js choosing the rung (Auto). The page's network is
throttled through the Chrome DevTools Protocol (Network.emulateNetworkConditions).

- The connection weakens while HD plays live: the picture changes to a lower rung within
  FALLBACK_S and keeps moving (its time and its presented frames grow); from the
  throttling on, the <video> never waits for data, its picture never stands still and
  hls.js reports no stall.
- The connection is weak from the start: the class plays a lower rung, never HD, and
  once it plays, with none of those stalls either.

The weak connection: THROTTLE_BETWEEN of the way from what the master playlist declares
for SD to what it declares for HD (2.4 Mb/s of SD's 1.17 and HD's 2.82): SD fits twice
over, HD does not (its media, the audio and the blocking playlist reloads come to about
2.7 Mb/s). A rung changes only where a segment starts (a keyframe, every 2 s), so when
the connection weakens the player finishes its HD segment first, playing a little slower
meanwhile. Nearer SD's bandwidth (2.0 Mb/s, half-way) HD arrives at two thirds of real
time, slower than the player slows down to, and a weakening early in a segment can still
freeze the picture for about 300 ms, a few times, before SD plays.

What the page does is recorded from outside the player (`support.browser.watch_playback`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, CDPSession, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from support.browser import (
    CHROMIUM,
    playback_events,
    wait_playing,
    watch_playback,
)
from support.live_stack import (
    LiveStack,
    publish_ffmpeg,
    variants,
)

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]
HD, SD = 720, 480
# The weak connection, between SD's and HD's BANDWIDTH: this far from SD's to HD's.
THROTTLE_BETWEEN = 0.75
# Bounds on what the viewer sees (seconds): generous, as a loaded 2-core machine is slow.
REACH_HD_S = 90  # unthrottled, hls.js climbs to HD
SETTLE_S = 5  # HD plays this much before the connection weakens
FALLBACK_S = 30  # throttled, the picture is a lower rung
WATCH_S = 10  # then the class is watched for this much of its time...
WATCH_WITHIN_S = 40  # ...within this much wall time
MIN_FPS = 5  # presenting at least this many frames a second of it (the class has 15)

VIEWER_JS = """() => {
    const video = document.querySelector("#player video");
    const status = document.querySelector("#player .player-status");
    const quality = video ? video.getVideoPlaybackQuality() : null;
    return {
        time: video ? video.currentTime : 0,
        height: video ? video.videoHeight : 0,
        frames: quality ? quality.totalVideoFrames - quality.droppedVideoFrames : 0,
        status: status ? status.textContent : "",
        now: performance.now(),
    };
}"""


@pytest.fixture
async def live_class(stack: LiveStack) -> AsyncIterator[dict[int, int]]:
    """The demo class live from ffmpeg at 720p with segments in every rung; yields each
    video rung's BANDWIDTH in the master playlist, by height."""
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=300, gop_seconds=2)
    try:
        grant = await stack.playback(await stack.live_session_id())

        await stack.ladder_ready(grant["url"], within=40)
        _, master, _ = await stack.get(grant["url"])
        bandwidths = {int(attributes["RESOLUTION"].split("x")[1]): int(attributes["BANDWIDTH"])
                      for attributes, _ in variants(master.decode())
                      if "RESOLUTION" in attributes}
        assert HD in bandwidths and SD in bandwidths, bandwidths
        yield bandwidths
    finally:
        if publisher.returncode is None:
            publisher.kill()
        await publisher.wait()


def weak(bandwidths: dict[int, int]) -> float:
    """Bits per second for the weak connection: between SD's and HD's BANDWIDTH."""
    return bandwidths[SD] + THROTTLE_BETWEEN * (bandwidths[HD] - bandwidths[SD])


async def throttle(page: Page, bits_per_second: float) -> CDPSession:
    """Limit what `page` downloads to `bits_per_second` (with no added latency)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": bits_per_second / 8,
        "uploadThroughput": -1})
    return cdp


async def viewer(page: Page) -> dict[str, Any]:
    """What the viewer sees now: the video's time, picture height, frames presented."""
    seen: dict[str, Any] = await page.evaluate(VIEWER_JS)
    return seen


def stalls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a viewer would call a stall: the video waiting for data, hls.js reporting a
    stalled buffer, or the picture standing still (see `watch_playback`)."""
    return [event for event in events if event["kind"] in ("waiting", "frozen")
            or (event["kind"] == "hls-error" and event["detail"] == "bufferStalledError")]


async def until(page: Page, condition: str, *, within_s: float, what: str,
                arg: Any = None) -> None:
    """Wait for the JS `condition` on the page; on timeout, fail saying what was awaited,
    what the viewer saw and what the page recorded."""
    try:
        await page.wait_for_function(condition, arg=arg, timeout=within_s * 1000)
    except PlaywrightTimeout:
        seen = await viewer(page)
        events = await playback_events(page)
        raise AssertionError(f"not within {within_s} s: {what}; the viewer sees {seen};"
                             f" events {events}") from None


async def watched(page: Page, *, since: dict[str, Any]) -> dict[str, Any]:
    """Watch WATCH_S of the class from `since` on; what the viewer sees at the end."""
    await until(page, "(after) => document.querySelector('#player video').currentTime > after",
                arg=since["time"] + WATCH_S, within_s=WATCH_WITHIN_S,
                what=f"{WATCH_S} s more of the class to play")
    return await viewer(page)


async def test_a_connection_that_weakens_falls_back_without_a_stall(
    stack: LiveStack, chromium: Browser, live_class: dict[int, int],
) -> None:
    page = await (await chromium.new_context()).new_page()
    await watch_playback(page)
    await page.goto(f"{stack.settings.public_url}/learn/{stack.course_id}")
    # Unthrottled (loopback), the player settles on HD, live.
    await until(page, "() => { const v = document.querySelector('#player video');"
                " return v && v.videoHeight === 720 && !v.paused"
                " && document.querySelector('#player[data-live=live]') !== null; }",
                within_s=REACH_HD_S, what="HD to play live")
    await wait_playing(page, advance=SETTLE_S)
    await until(page, "() => document.querySelector('#player video').videoHeight === 720"
                " && document.querySelector('#player-status').textContent === 'Playing HD (auto)'",
                within_s=REACH_HD_S, what="HD to play on")
    before = await viewer(page)

    bits_per_second = weak(live_class)
    await throttle(page, bits_per_second)
    await until(page, "() => { const v = document.querySelector('#player video');"
                " return v.videoHeight > 0 && v.videoHeight < 720; }",
                within_s=FALLBACK_S, what="a lower rung")
    fallen = await viewer(page)
    after = await watched(page, since=fallen)
    assert after["frames"] - fallen["frames"] >= WATCH_S * MIN_FPS, (fallen, after)
    assert 0 < after["height"] < HD, after  # settled below HD, not back up to it
    assert after["status"] in ("Playing SD (auto)", "Playing Mobile (auto)"), after
    events = await playback_events(page, before["now"])
    found = stalls(events)
    assert found == [], (f"{len(found)} stalls once throttled to {bits_per_second:.0f} b/s:"
                         f" {found}; all events since: {events}")


async def test_a_connection_weak_from_the_start_plays_a_lower_rung_without_a_stall(
    stack: LiveStack, chromium: Browser, live_class: dict[int, int],
) -> None:
    page = await (await chromium.new_context()).new_page()
    await watch_playback(page)
    bits_per_second = weak(live_class)
    await throttle(page, bits_per_second)
    await page.goto(f"{stack.settings.public_url}/learn/{stack.course_id}")
    await wait_playing(page, timeout_ms=60_000)
    start = await viewer(page)
    after = await watched(page, since=start)
    assert after["frames"] - start["frames"] >= WATCH_S * MIN_FPS, (start, after)
    assert 0 < after["height"] < HD, after
    events = await playback_events(page)
    rungs = [event["detail"] for event in events if event["kind"] == "level"]
    assert HD not in rungs, f"HD played on {bits_per_second:.0f} b/s: {events}"
    first_playing = next(event["at"] for event in events if event["kind"] == "playing")
    found = stalls([event for event in events if event["at"] > first_playing])
    assert found == [], (f"{len(found)} stalls on {bits_per_second:.0f} b/s once playing:"
                         f" {found}; all events: {events}")
