"""One rendition's fragmented MP4 stream turned into LL-HLS pieces: its init segment and
its parts (moof+mdat), each part marked when it begins a segment.

Segments are cut on a grid of `segment_seconds` counted from the first part's start, not
from wall-clock or byte counts, so every rendition written by one ffmpeg (one clock, one
first timestamp) cuts its segments at the same media times, as HLS requires for switching
renditions. A segment starts only on an independent part (a video keyframe, or any audio
part): the first independent part at or after a boundary (within `_TOLERANCE`) starts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transcode.cmaf.boxes import DEFAULT_MAX_BOX_BYTES, Box, BoxSplitter, CmafError
from transcode.cmaf.fragments import FragmentInfo, InitInfo, parse_fragment, parse_init

__all__ = ["CmafPackager", "Init", "Part"]

# A part whose start is this close before a boundary still starts the segment there:
# forced keyframes land exactly on the grid, but decode times in the track's timescale
# (and audio parts of ~1024-sample frames) rarely do.
_TOLERANCE = 0.1


@dataclass(frozen=True, slots=True)
class Init:
    """The init segment (ftyp+moov), to serve as EXT-X-MAP."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Part:
    """One moof+mdat: an LL-HLS part; `start`/`duration` in seconds of media time."""

    data: bytes
    start: float
    duration: float
    independent: bool
    new_segment: bool


class CmafPackager:
    """Feeds one rendition's bytes, in any chunking; returns the Init and Parts completed.

    Boxes other than ftyp, moov, moof and mdat (styp, sidx, prft, mfra, free...) are
    dropped: an LL-HLS part is moof+mdat, and players need nothing else. A new moov (a
    restarted muxer) yields a new Init and restarts the segment grid at its first part.
    """

    def __init__(
        self, segment_seconds: float, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES
    ) -> None:
        if not (math.isfinite(segment_seconds) and segment_seconds > 0):
            raise ValueError("segment_seconds must be a positive number")
        self.segment_seconds = segment_seconds
        self._max_box_bytes = max_box_bytes
        self._splitter = BoxSplitter(max_box_bytes)
        self._ftyp: bytes | None = None
        self._init: InitInfo | None = None
        # The moof waiting for its mdat, already read (so a bad one fails at once).
        self._moof: tuple[Box, FragmentInfo] | None = None
        self._t0: float | None = None  # the grid's origin: the first part's start
        self._next_boundary = 1  # index k of the next boundary, at t0 + k * segment_seconds
        self._closed = False

    @property
    def init_info(self) -> InitInfo | None:
        """The tracks of the latest Init, once one came."""
        return self._init

    def feed(self, data: bytes) -> list[Init | Part]:
        if self._closed:
            raise CmafError("packager already closed")
        out: list[Init | Part] = []
        for box in self._splitter.feed(data):
            item = self._on_box(box)
            if item is not None:
                out.append(item)
        return out

    def close(self) -> list[Init | Part]:
        """End of stream: an incomplete box or a moof without its mdat is dropped (a
        part must be whole to be served), so nothing more can come out."""
        self._closed = True
        self._moof = None
        return []

    def _on_box(self, box: Box) -> Init | Part | None:
        if box.type == "ftyp":
            self._ftyp = box.data
            self._moof = None
        elif box.type == "moov":
            return self._on_moov(box)
        elif box.type == "moof":
            if self._init is None:
                raise CmafError("moof before any moov")
            # A moof replacing one still without its mdat: the earlier one cannot be
            # served (its samples are gone), so it is dropped.
            self._moof = (box, parse_fragment(box.data, self._init, self._max_box_bytes))
        elif box.type == "mdat" and self._moof is not None:
            moof, info = self._moof
            self._moof = None
            return self._part(moof.data + box.data, info)
        return None

    def _on_moov(self, box: Box) -> Init:
        if self._ftyp is None:
            raise CmafError("moov before any ftyp")
        data = self._ftyp + box.data
        self._init = parse_init(data, self._max_box_bytes)
        self._moof = None
        self._t0 = None  # a new init starts a new segment and a new grid
        self._next_boundary = 1
        return Init(data)

    def _part(self, data: bytes, info: FragmentInfo) -> Part:
        step = self.segment_seconds
        if self._t0 is None:
            self._t0 = info.start
            new_segment = True
        else:
            new_segment = (
                info.independent
                and info.start - self._t0 >= self._next_boundary * step - _TOLERANCE
            )
        if new_segment:
            # The next boundary is the first one this part's start has not reached: with a
            # GOP longer than a segment several boundaries may have passed since the last
            # cut, and they are skipped rather than owed.
            reached = math.floor((info.start - self._t0 + _TOLERANCE) / step)
            self._next_boundary = max(reached + 1, 1)
        return Part(data, info.start, info.duration, info.independent, new_segment)
