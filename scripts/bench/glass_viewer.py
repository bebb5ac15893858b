"""The viewer's side of the glass-to-glass benchmark, in headless chromium (Debian's).

Two ways to watch, one measurement:
- our course page, as a signed-in enrolled student (the page's own player.js and hls.js);
- a minimal page that plays a reference server's HLS with the same vendored hls.js and its
  defaults (`new Hls()`), served at the reference's own origin by Playwright's routing (so
  its playlists and segments are same-origin, with no server of ours in between).

In the page, every presented frame (`video.requestVideoFrameCallback`; a rAF loop where
that is missing) has its painted time read back (`clock_frames.DECODER_JS`) and
`Date.now() - painted` recorded: the publisher paints `time.time()` on the same machine,
so both are the same clock.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from clock_frames import DECODER_JS
from playwright.async_api import Browser, Page, Route

from support.browser import sign_in

# Installs the sampler on the first <video> inside `selector`: window.__glass holds the
# samples [wall ms, latency ms, video height] and the counts of frames seen and unreadable.
SAMPLER_JS = """
(selector) => {
  const video = document.querySelector(selector + " video");
  const glass = { samples: [], frames: 0, unreadable: 0, stalls: 0, api: "" };
  window.__glass = glass;
  video.addEventListener("waiting", () => { glass.stalls += 1; });
  const sample = () => {
    glass.frames += 1;
    const painted = window.__clockRead(video);
    if (painted === null) { glass.unreadable += 1; return; }
    const now = Date.now();
    glass.samples.push([now, now - painted, video.videoHeight]);
  };
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    glass.api = "requestVideoFrameCallback";
    const onFrame = () => { sample(); video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
  } else {
    glass.api = "requestAnimationFrame";
    let last = -1;
    const onTick = () => {
      if (video.currentTime !== last) { last = video.currentTime; sample(); }
      requestAnimationFrame(onTick);
    };
    requestAnimationFrame(onTick);
  }
  return glass.api;
}
"""

REFERENCE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>reference</title></head>
<body><div id="player"><video controls playsinline preload="auto"></video></div>
<script src="/__bench/hls.js"></script>
<script>
  const video = document.querySelector("#player video");
  const hls = new Hls();
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  hls.loadSource(PLAYLIST);
  hls.attachMedia(video);
</script></body></html>
"""


@dataclass
class GlassFigures:
    samples_ms: list[float] = field(default_factory=list)
    heights: dict[int, int] = field(default_factory=dict)  # video height -> samples
    frames: int = 0
    unreadable: int = 0
    stalls: int = 0
    api: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.samples_ms) / 1000 if self.samples_ms else None

    @property
    def p90_s(self) -> float | None:
        if len(self.samples_ms) < 2:
            return self.median_s
        return statistics.quantiles(self.samples_ms, n=10)[-1] / 1000

    def describe(self) -> str:
        if not self.samples_ms:
            return f"no sample ({self.frames} frames seen, {self.unreadable} unreadable)"
        rungs = ", ".join(f"{h}p {n}" for h, n in sorted(self.heights.items(), reverse=True))
        return (f"median {self.median_s:.2f} s, p90 {self.p90_s:.2f} s, min "
                f"{min(self.samples_ms) / 1000:.2f} s, max {max(self.samples_ms) / 1000:.2f}"
                f" s; {len(self.samples_ms)} frames read ({rungs}), {self.unreadable} "
                f"unreadable, {self.stalls} stalls ({self.api})")


async def open_course(browser: Browser, base: str, course_id: int, username: str,
                      password: str) -> Page:
    """The course page as the signed-in student, its player started by the page."""
    page = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()
    await page.add_init_script(DECODER_JS)
    await sign_in(page, base, username, password, f"/learn/{course_id}")
    return page


async def open_reference(browser: Browser, playlist_url: str, hls_js: bytes) -> Page:
    """The minimal hls.js page at the playlist's origin, playing `playlist_url` with the
    hls.js script `hls_js`."""
    origin = "/".join(playlist_url.split("/")[:3])
    html = REFERENCE_PAGE.replace("PLAYLIST", repr(playlist_url))
    page = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()

    async def serve(route: Route) -> None:
        if route.request.url.endswith("/__bench/hls.js"):
            await route.fulfill(body=hls_js, content_type="text/javascript")
        else:
            await route.fulfill(body=html, content_type="text/html")

    await page.route(f"{origin}/__bench/**", serve)
    await page.add_init_script(DECODER_JS)
    await page.goto(f"{origin}/__bench/index.html")
    return page


async def wait_playing(page: Page, selector: str = "#player", timeout_s: float = 60) -> None:
    """Until the video has a picture and its time moves."""
    await page.wait_for_function(
        """(selector) => {
            const v = document.querySelector(selector + " video");
            return v && v.currentTime > 0.5 && v.videoWidth > 0 && !v.paused;
        }""", arg=selector, timeout=timeout_s * 1000)


async def measure(page: Page, *, warmup_s: float, seconds: float,
                  selector: str = "#player") -> GlassFigures:
    """Plays `warmup_s` unmeasured, then records every presented frame for `seconds`."""
    await wait_playing(page, selector)
    api = await page.evaluate(SAMPLER_JS, selector)
    await page.wait_for_timeout(warmup_s * 1000)
    counts = "() => [window.__glass.frames, window.__glass.unreadable, window.__glass.stalls]"
    before = await page.evaluate(counts)
    start_ms = time.time() * 1000
    await page.wait_for_timeout(seconds * 1000)
    after = await page.evaluate(counts)
    glass: dict[str, Any] = await page.evaluate("() => window.__glass")
    frames, unreadable, stalls = (b - a for a, b in zip(before, after, strict=True))
    figures = GlassFigures(api=api, frames=frames, unreadable=unreadable, stalls=stalls)
    for at, latency, height in glass["samples"]:
        if at >= start_ms:
            figures.samples_ms.append(float(latency))
            figures.heights[int(height)] = figures.heights.get(int(height), 0) + 1
    return figures
