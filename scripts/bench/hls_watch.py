"""Watching a live HLS playlist as a player would: when each segment appears, how much
media the playlist has made available by then, and the first segment that plays.

Low-Latency playlists count their parts too: the media a player may fetch is every
complete segment plus the parts of the one being made (EXT-X-PART after the last URI).
fMP4 segments are decoded with their init section (EXT-X-MAP) before them.

A watcher is a thread polling one media playlist (every 100 ms by default) until stopped.
Segments are tracked by media sequence number, so a sliding window loses nothing as long
as the poll is faster than a segment. The first listed segment is downloaded and decoded
with PyAV (in the watcher's thread): "playable" means a video frame came out of it.
"""

from __future__ import annotations

import io
import re
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import av


@dataclass(frozen=True)
class Segment:
    sequence: int
    duration: float
    uri: str
    init: str | None = None  # the EXT-X-MAP in force (fMP4)


_PART_DURATION = re.compile(r"DURATION=([0-9.]+)")


def open_parts_seconds(text: str) -> float:
    """Seconds of the parts listed after the last complete segment (LL-HLS)."""
    total = 0.0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-PART:"):
            match = _PART_DURATION.search(line)
            total += float(match.group(1)) if match else 0.0
        elif line and not line.startswith("#"):
            total = 0.0
    return total


def fetch(url: str, timeout_s: float = 5) -> bytes | None:
    """The body of a 200 answer; None for any error (not there yet, refused, down)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def parse_media_playlist(text: str) -> list[Segment]:
    sequence = 0
    duration: float | None = None
    init: str | None = None
    found: list[Segment] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            match = re.search(r'URI="([^"]+)"', line)
            init = match.group(1) if match else init
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            found.append(Segment(sequence, duration, line, init))
            sequence += 1
            duration = None
    return found


def first_variant(master_url: str, text: str) -> str | None:
    """The first (tallest) variant's absolute URL in a master playlist."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return urllib.parse.urljoin(master_url, line)
    return None


def decodes_video(data: bytes, fmt: str | None = "mpegts") -> bool:
    """True if the bytes (MPEG-TS, or init + fMP4 segment with `fmt` None) hold a video
    stream of which a frame decodes."""
    try:
        with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
            if not container.streams.video:
                return False
            for _frame in container.decode(video=0):
                return True
    except (av.FFmpegError, ValueError, OSError):
        return False
    return False


@dataclass
class Appearance:
    at: float  # time.monotonic() of the poll that first listed the segment
    sequence: int
    available: float  # media seconds listed since the start, this segment included


@dataclass
class LiveWatch:
    """Polls `playlist_url` (or, given `resolve`, the URL it returns once it has one)."""

    started: float  # time.monotonic() of the publish start, the zero of every figure
    playlist_url: str | None = None
    interval_s: float = 0.1
    resolve: Callable[[], str | None] | None = None  # tried until it gives a URL
    check_playable: bool = True
    appearances: list[Appearance] = field(default_factory=list)
    first_playable: float | None = None  # seconds after `started`
    missed: int = 0  # sequence numbers never seen listed (a poll slower than a segment)
    errors: list[str] = field(default_factory=list)
    _seen: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LiveWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _url(self) -> str | None:
        if self.playlist_url is None and self.resolve is not None:
            self.playlist_url = self.resolve()
        return self.playlist_url

    def _run(self) -> None:
        first_poll = True
        available = 0.0
        edge = 0.0
        highest = -1
        while not self._stop.is_set():
            next_poll = time.monotonic() + self.interval_s
            url = self._url()
            body = fetch(url) if url else None
            now = time.monotonic()
            segments = parse_media_playlist(body.decode(errors="replace")) if body else []
            new = [s for s in segments if s.sequence > highest]
            if new and highest >= 0 and new[0].sequence > highest + 1:
                self.missed += new[0].sequence - highest - 1
            for segment in new:
                available += segment.duration
                highest = segment.sequence
                # Segments already listed on the first poll appeared earlier than we saw.
                if not first_poll:
                    self.appearances.append(Appearance(now, segment.sequence, available))
            parts = open_parts_seconds(body.decode(errors="replace")) if body else 0.0
            if parts and not first_poll and available + parts > edge:
                # A part is media a low-latency player can fetch: the edge moved on.
                self.appearances.append(Appearance(now, highest + 1, available + parts))
            edge = max(edge, available + parts)
            if segments:
                first_poll = False
            if self.check_playable and self.first_playable is None and segments and url:
                data = fetch(urllib.parse.urljoin(url, segments[0].uri), timeout_s=10)
                init = segments[0].init
                if data and init is not None:
                    head = fetch(urllib.parse.urljoin(url, init), timeout_s=10)
                    if head and decodes_video(head + data, fmt=None):
                        self.first_playable = time.monotonic() - self.started
                elif data and decodes_video(data):
                    self.first_playable = time.monotonic() - self.started
            self._stop.wait(max(0.0, next_poll - time.monotonic()))

    # -- figures ---------------------------------------------------------------------------
    def delays(self, since: float | None = None, until: float | None = None) -> list[float]:
        """Live-edge delay at each appearance (between the monotonic instants `since` and
        `until`): wall time since the publish start minus the media the playlist had made
        available."""
        return [(a.at - self.started) - a.available for a in list(self.appearances)
                if (since is None or a.at >= since) and (until is None or a.at <= until)]

    def media_rate(self, t0: float, t1: float) -> float | None:
        """Media seconds made available per wall second between two monotonic instants,
        from the first and last appearances in that span; None if fewer than two."""
        inside = [a for a in self.appearances if t0 <= a.at <= t1]
        if len(inside) < 2 or inside[-1].at <= inside[0].at:
            return None
        return (inside[-1].available - inside[0].available) / (inside[-1].at - inside[0].at)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
