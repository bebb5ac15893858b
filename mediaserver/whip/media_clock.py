"""Millisecond timestamps for the FLV stream from the RTP-based pts aiortc gives frames.

Audio and video RTP clocks start at unrelated random values and wrap at 2**32, and
without RTCP sender reports (aiortc does not hand them over) they cannot be related
exactly. Each track is therefore placed by the arrival of its first frame (relative to
the publish's first frame), then follows its own clock from there, unwrapped. Within a
track timestamps never go back.
"""

from __future__ import annotations

import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MediaClock"]

_WRAP = 1 << 32


@dataclass
class _TrackClock:
    offset_ms: float
    first_pts: int
    last_raw: int
    unwrapped: int  # the last pts with wraps added
    last_ms: int = -1


class MediaClock:
    """`ms(track, pts, time_base)`: the FLV timestamp of a frame of `track`."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._start: float | None = None
        self._tracks: dict[str, _TrackClock] = {}

    def ms(self, track: str, pts: int | None, time_base: fractions.Fraction | None) -> int:
        now = self._now()
        if self._start is None:
            self._start = now
        clock = self._tracks.get(track)
        raw = int(pts) % _WRAP if pts is not None else 0
        if clock is None:
            clock = _TrackClock((now - self._start) * 1000, raw, raw, raw)
            self._tracks[track] = clock
        else:
            delta = (raw - clock.last_raw) % _WRAP
            if delta >= _WRAP // 2:
                delta -= _WRAP  # a reordered (earlier) frame, not a wrap
            clock.unwrapped += delta
            clock.last_raw = raw
        if pts is None or time_base is None:
            elapsed = (now - self._start) * 1000 - clock.offset_ms
        else:
            elapsed = float((clock.unwrapped - clock.first_pts) * time_base * 1000)
        value = max(int(clock.offset_ms + elapsed), clock.last_ms, 0)
        clock.last_ms = value
        return value
