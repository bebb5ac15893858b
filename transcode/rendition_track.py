"""One rendition of a live class session as LL-HLS: numbered segments, recent parts, waits.

`SessionOutput` feeds a track the parts the CMAF packager cut; the track numbers them
into segments continuous across publisher reconnects and ffmpeg restarts (a new epoch
starts its first segment with a discontinuity and its own init segment), keeps in memory
what players near the live edge ask for (the parts of the last few segments and the
bytes of the segments storage may not have yet), renders the live playlist (the whole
class so far, for rewinding, with parts only near the edge) and lets a blocking playlist
request wait for a part without polling: each change wakes the waiters once.

Names, relative to the rendition's folder: segment n is `{n:06d}.m4s`, its part p
`{n:06d}.{p}.m4s`, the init segment whose first segment is n `init_{n:06d}.mp4`.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from transcode.hls_playlist import (
    LowLatency,
    Part,
    RenditionReport,
    Segment,
    render_live_playlist,
    target_duration,
)

__all__ = ["PARTS_KEPT", "PARTS_LISTED", "ClosedSegment", "RenditionTrack", "init_name",
           "part_name", "segment_name"]

# Complete segments whose parts are listed: the spec asks for parts within three target
# durations of the live edge, and strict parsers allow them on the last two complete ones.
PARTS_LISTED = 2
# Complete segments whose parts are still served, for a player a little behind.
PARTS_KEPT = 4
# The packager's tolerance when it cuts on the segment grid (transcode.cmaf.packager).
_GRID_TOLERANCE = 0.1
# Complete segments kept in memory for players, while the upload queue stores them.
BYTES_KEPT = 6


def segment_name(number: int) -> str:
    return f"{number:06d}.m4s"


def part_name(number: int, index: int) -> str:
    return f"{number:06d}.{index}.m4s"


def init_name(number: int) -> str:
    return f"init_{number:06d}.mp4"


@dataclass(frozen=True)
class ClosedSegment:
    """A segment just completed: its number, its playlist entry and its bytes."""

    number: int
    segment: Segment
    data: bytes


@dataclass
class _OpenSegment:
    """The segment being made: its parts so far."""

    number: int
    discontinuity: bool
    init_uri: str | None
    start: float  # its first part's, on its run's clock
    parts: list[Part] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class RenditionTrack:
    """The live state of one rendition; see the module docstring. Not thread-safe: the
    session output's lock orders every change."""

    def __init__(self, name: str, *, part_target: float, live: bool = True,
                 segment_seconds: float = 2.0) -> None:
        self.name = name
        self.part_target = part_target
        self.segment_seconds = segment_seconds
        self.live = live
        self.segments: list[Segment] = []  # segment n is segments[n]
        self.last_epoch = -1  # ordinal of the epoch that gave the latest part
        self.ended = False
        self.recorded = 0  # segments named by the recording playlist last written
        self.target = 1  # the target duration never shrinks
        self._open: _OpenSegment | None = None
        self._pending_init: str | None = None  # the next segment starts a new init
        self._origin: float | None = None  # where the run's segment grid starts (seconds)
        self._next_start = 0.0  # where the next part starts, on the run's clock
        self._pending_discontinuity = False
        self._parts: OrderedDict[int, tuple[Part, ...]] = OrderedDict()
        self._part_data: dict[tuple[int, int], bytes] = {}
        self._segment_data: OrderedDict[int, bytes] = OrderedDict()
        self._inits: dict[str, bytes] = {}
        self._changed = asyncio.Event()
        self._rendered: dict[tuple[object, ...], str] = {}

    # Feeding ----------------------------------------------------------------------------

    def restore(self, segments: list[Segment]) -> None:
        """Segments an earlier process recorded (resume): numbering goes on after them."""
        self.segments = list(segments)
        self.target = target_duration([s.duration for s in segments], self.target)
        self._pending_discontinuity = bool(segments)

    def new_init(self, data: bytes) -> tuple[str, ClosedSegment | None]:
        """A run's init segment: the next segment starts with it. Returns its name, and the
        segment it closed (the earlier run's last)."""
        closed = self.close_segment()
        number = len(self.segments)
        name = init_name(number)
        self._inits[name] = data
        self._pending_init = name
        self._pending_discontinuity = number > 0
        self._origin = None
        self._touch()
        return name, closed

    def add_part(self, data: bytes, duration: float, independent: bool,
                 new_segment: bool, start: float = 0.0) -> ClosedSegment | None:
        """One part (`start`: on its run's clock); returns the segment it closed, when it
        starts a new one."""
        if self._origin is None:
            self._origin = start
        self._next_start = start + duration
        closed = None
        if new_segment or self._open is None:
            closed = self.close_segment()
            self._start_segment(start)
        segment = self._open
        assert segment is not None
        index = len(segment.parts)
        segment.parts.append(Part(part_name(segment.number, index), duration, independent))
        segment.data.append(data)
        if self.live:
            self._part_data[(segment.number, index)] = data
        self._touch()
        return closed

    def _start_segment(self, start: float) -> None:
        number = len(self.segments)
        init = self._pending_init
        if init is None and number == 0:
            init = init_name(0)
        discontinuity = self._pending_discontinuity and number > 0
        self._open = _OpenSegment(number, discontinuity, init, start)
        self._pending_init = None
        self._pending_discontinuity = False

    def close_segment(self) -> ClosedSegment | None:
        """Close the segment being made (its media ended); returns it, if it had parts."""
        open_segment, self._open = self._open, None
        if open_segment is None or not open_segment.parts:
            return None
        number = open_segment.number
        segment = Segment(segment_name(number), open_segment.duration,
                          open_segment.discontinuity, open_segment.init_uri)
        self.segments.append(segment)
        self.target = max(self.target, target_duration([segment.duration]))
        data = b"".join(open_segment.data)
        if self.live:
            self._parts[number] = tuple(open_segment.parts)
            while len(self._parts) > PARTS_KEPT:
                old, parts = self._parts.popitem(last=False)
                for index in range(len(parts)):
                    self._part_data.pop((old, index), None)
            self._segment_data[number] = data
            while len(self._segment_data) > BYTES_KEPT:
                self._segment_data.popitem(last=False)
        self._touch()
        return ClosedSegment(number, segment, data)

    def mark_gap(self, number: int) -> None:
        """Segment `number` never reaches storage: players skip it (EXT-X-GAP) once it is
        gone from memory, and the recording lists it as missing."""
        self.segments[number] = replace(self.segments[number], gap=True)
        self._touch()

    def end(self) -> ClosedSegment | None:
        """The class ended: the last segment closes, waiters are answered."""
        closed = self.close_segment()
        self.ended = True
        self._touch()
        return closed

    def _touch(self) -> None:
        self._rendered.clear()
        self._changed.set()
        self._changed = asyncio.Event()

    # Reading ----------------------------------------------------------------------------

    @property
    def open_number(self) -> int:
        """The media sequence number of the segment being made (or made next)."""
        return self._open.number if self._open is not None else len(self.segments)

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist now holds segment `msn` (complete), or its part `part`."""
        if self.ended or msn < len(self.segments):
            return True
        if part is None or self._open is None or msn > self._open.number:
            return False
        return msn < self._open.number or part < len(self._open.parts)

    async def wait(self, msn: int, part: int | None, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `has(msn, part)`, at most `timeout` seconds; False when it did not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has(msn, part):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.has(msn, part)
        return True

    def report(self) -> tuple[int, int | None]:
        """(LAST-MSN, LAST-PART) for other renditions' EXT-X-RENDITION-REPORT."""
        if self._open is not None and self._open.parts:
            return self._open.number, len(self._open.parts) - 1
        if self.segments:
            last = len(self.segments) - 1
            parts = self._parts.get(last)
            return last, (len(parts) - 1 if parts else None)
        return 0, None

    def _starts_segment_next(self) -> bool:
        """Whether the next part should open a new segment: it starts on the segment grid
        the packager cuts on (where the encoder forced a keyframe), so the preload hint
        names the part that will exist rather than one that never will."""
        if self._origin is None or self._open is None:
            return False
        step = self.segment_seconds
        started = self._open.start - self._origin
        boundary = (math.floor((started + _GRID_TOLERANCE) / step) + 1) * step
        return self._next_start - self._origin >= boundary - _GRID_TOLERANCE

    def part_data(self, number: int, index: int) -> bytes | None:
        return self._part_data.get((number, index))

    def segment_data(self, number: int) -> bytes | None:
        return self._segment_data.get(number)

    def init_data(self, name: str) -> bytes | None:
        return self._inits.get(name)

    def playlist(self, *, skip: bool, reports: tuple[RenditionReport, ...]) -> str:
        """The live media playlist: every segment so far, parts near the edge."""
        key = (skip, reports)
        text = self._rendered.get(key)
        if text is not None:
            return text
        segments = list(self.segments)
        for number, parts in list(self._parts.items())[-PARTS_LISTED:]:
            segments[number] = replace(segments[number], parts=parts)
        open_segment = self._open
        hint = None
        if not self.ended:
            if open_segment is not None and self._starts_segment_next():
                hint = part_name(open_segment.number + 1, 0)
            else:
                hint = part_name(self.open_number,
                                 len(open_segment.parts) if open_segment else 0)
        low_latency = LowLatency(
            part_target=self.part_target,
            open_parts=tuple(open_segment.parts) if open_segment else (),
            open_discontinuity=open_segment.discontinuity if open_segment else False,
            open_init_uri=open_segment.init_uri if open_segment else None,
            preload_hint=hint,
            reports=reports,
            skip=skip,
        )
        text = render_live_playlist(segments, media_sequence=0, min_target=self.target,
                                    ended=self.ended, low_latency=low_latency)
        self._rendered[key] = text
        return text
