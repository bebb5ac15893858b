"""Playwright helpers for the browser tests: Debian's chromium, headless, and what a
viewer does and sees on the pages (signing in, the player's state, the video element).

Playwright's own browser downloads are never used: the executable is /usr/bin/chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


# A camera and microphone for pages that ask for them: chromium's test pattern and beep,
# granted without a prompt. Host ICE candidates as IP addresses, not mDNS `.local` names
# (a WebRTC server such as aiortc cannot resolve those).
FAKE_MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@asynccontextmanager
async def launch_chromium(*, fake_media: bool = False) -> AsyncIterator[Browser]:
    """Headless chromium; `fake_media` gives it a fake camera and microphone (FAKE_MEDIA_ARGS)."""
    # Tests cannot click play: let media start without a user gesture.
    args = ["--autoplay-policy=no-user-gesture-required"]
    if fake_media:
        args += FAKE_MEDIA_ARGS
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args,
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Headless chromium for one test (tests/conftest.py offers it to every test; a
    module wanting a fake camera defines its own)."""
    async with launch_chromium() as browser:
        yield browser


def csp_violations(page: Page) -> list[str]:
    """The Content-Security-Policy violations the browser reports on `page` from now on
    (chromium logs each to the console); the list fills as the page runs."""
    found: list[str] = []

    def check(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", check)
    return found


async def sign_in(page: Page, base: str, username: str, password: str, then: str) -> None:
    """Sign in through the page's form, landing on `then`."""
    await page.goto(f"{base}/signin?next={then}")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#signin button[type=submit]")
    await page.wait_for_url(f"{base}{then}")


async def video_state(page: Page, selector: str = "#player") -> dict[str, Any]:
    """The player's state and what its <video> shows right now."""
    state: dict[str, Any] = await page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector);
            const video = box && box.querySelector("video");
            return {
                state: box ? box.dataset.state : null,
                status: box ? box.querySelector(".player-status").textContent : "",
                time: video ? video.currentTime : 0,
                width: video ? video.videoWidth : 0,
                height: video ? video.videoHeight : 0,
            };
        }""",
        selector,
    )
    return state


async def wait_playing(page: Page, selector: str = "#player", *, timeout_ms: float = 30_000,
                       advance: float = 1.0) -> dict[str, Any]:
    """Wait until the video's time has advanced by `advance` seconds from now."""
    await page.wait_for_function(
        """(selector) => {
            const video = document.querySelector(selector + " video");
            return video && video.currentTime > 0 && video.videoWidth > 0 && !video.paused;
        }""",
        arg=selector, timeout=timeout_ms,
    )
    start = (await video_state(page, selector))["time"]
    await page.wait_for_function(
        "([selector, after]) =>"
        " document.querySelector(selector + ' video').currentTime > after",
        arg=[selector, start + advance], timeout=timeout_ms,
    )
    return await video_state(page, selector)


# Test instrumentation, from outside the player: what a viewer would notice of playback and
# what hls.js reports, from the page's first script on. `window.__playback` lists, in order,
# {kind, detail, at (performance.now() ms)}:
# - "waiting": a <video> has no data to play (detail: its currentTime);
# - "playing": it plays, first or again (detail: its currentTime);
# - "frozen": its picture stood still for `detail` ms (at least FROZEN_MS) while it played,
#   `at` being when it moved again: two frames presented one after the other that far
#   apart. Chromium lets the picture stop while the sound plays on, for a while, without a
#   "waiting" event;
# - "hls-error": any hls.js ERROR, fatal or not (detail: its details, such as
#   "bufferStalledError");
# - "level": hls.js switched rungs (detail: the rung's height, 0 for audio only).
# "waiting", "playing" and "hls-error" also say how much media the live playlist listed
# that hls.js had not buffered yet (`unloaded`, seconds; null when not live): about none
# when the player waited for the class itself (an encoder running late), not for the
# network. hls.js is watched by wrapping the class its script assigns to window.Hls, so
# every instance the page makes reports.
FROZEN_MS = 200
WATCH_PLAYBACK_JS = """
(() => {
  const events = [];
  window.__playback = events;
  const note = (kind, detail, at) => events.push({ kind, detail, at: at || performance.now() });
  const framed = new WeakSet();
  const watchFrames = (video) => {
    if (framed.has(video) || !video.requestVideoFrameCallback) return;
    framed.add(video);
    let last = null;
    const onFrame = (_now, frame) => {
      if (last && frame.presentedFrames === last.presentedFrames + 1 && !video.paused) {
        const still = frame.presentationTime - last.presentationTime;
        if (still >= FROZEN_MS) note("frozen", Math.round(still), frame.presentationTime);
      }
      last = frame;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  let latest = null; // the page's last hls.js instance
  const unloaded = () => {
    const details = latest && latest.latestLevelDetails;
    const buffer = latest && latest.mainForwardBufferInfo;
    if (!details || !details.live || !buffer) return null;
    return Math.max(0, details.edge - buffer.end);
  };
  for (const kind of ["waiting", "playing"]) {
    document.addEventListener(kind, (event) => {
      const at = performance.now();
      events.push({ kind, detail: event.target.currentTime, at, unloaded: unloaded() });
      if (kind === "playing") watchFrames(event.target);
    }, true);
  }
  let watched;
  Object.defineProperty(window, "Hls", {
    configurable: true,
    get: () => watched,
    set(Hls) {
      watched = class extends Hls {
        constructor(config) {
          super(config);
          latest = this;
          this.on(Hls.Events.ERROR, (_event, data) => events.push({
            kind: "hls-error", detail: data.details, at: performance.now(),
            unloaded: unloaded() }));
          this.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
            const level = this.levels[data.level];
            note("level", level ? level.height || 0 : -1);
          });
        }
      };
    },
  });
})();
""".replace("FROZEN_MS", str(FROZEN_MS))


async def watch_playback(page: Page) -> None:
    """Record `page`'s playback events (WATCH_PLAYBACK_JS) from its next navigation on."""
    await page.add_init_script(WATCH_PLAYBACK_JS)


async def playback_events(page: Page, since_ms: float = 0) -> list[dict[str, Any]]:
    """The events `watch_playback` recorded at or after `since_ms` (performance.now())."""
    events: list[dict[str, Any]] = await page.evaluate(
        "(since) => window.__playback.filter((event) => event.at >= since)", since_ms)
    return events


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path
