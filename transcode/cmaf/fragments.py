"""What packaging needs to know from fragmented MP4 boxes: per track its clock and kind
(from the init segment's moov), and per fragment its decode time, duration, sample count
and whether it starts with a sync sample (from the moof).

Only the fields that drive segmentation are read; sample data, codec configuration and
edit lists are not looked at. Malformed or truncated boxes raise `CmafError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from transcode.cmaf.boxes import DEFAULT_MAX_BOX_BYTES, Box, CmafError, iter_children

__all__ = [
    "SAMPLE_IS_NON_SYNC",
    "FragmentInfo",
    "InitInfo",
    "TrackFragment",
    "TrackInfo",
    "TrackKind",
    "parse_fragment",
    "parse_init",
]

TrackKind = Literal["video", "audio", "other"]

# sample_flags (ISO/IEC 14496-12 8.8.3.1): this bit set means "not a sync sample".
SAMPLE_IS_NON_SYNC = 0x00010000

# tfhd flags: which optional fields follow track_ID.
_TFHD_BASE_DATA_OFFSET = 0x000001
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
_TFHD_DEFAULT_SAMPLE_DURATION = 0x000008
_TFHD_DEFAULT_SAMPLE_SIZE = 0x000010
_TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020
# trun flags: optional fields before the samples, then which fields each sample has.
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_SAMPLE_FLAGS = 0x000004
_TRUN_SAMPLE_DURATION = 0x000100
_TRUN_SAMPLE_SIZE = 0x000200
_TRUN_SAMPLE_FLAGS = 0x000400
_TRUN_SAMPLE_CTO = 0x000800

_HANDLERS: dict[bytes, TrackKind] = {b"vide": "video", b"soun": "audio"}


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One track of the init segment; the defaults come from its trex (0 without one)."""

    track_id: int
    kind: TrackKind
    timescale: int
    default_sample_duration: int = 0
    default_sample_flags: int = 0


@dataclass(frozen=True, slots=True)
class InitInfo:
    """The tracks of an init segment (ftyp+moov), by track_ID, in moov order."""

    tracks: Mapping[int, TrackInfo]

    @property
    def has_video(self) -> bool:
        return any(t.kind == "video" for t in self.tracks.values())


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """One traf of a moof: decode time and duration in the track's timescale units."""

    track_id: int
    kind: TrackKind
    timescale: int
    base_media_decode_time: int
    duration_ticks: int
    sample_count: int
    # The first sample's flags, None when the traf has no sample.
    first_sample_flags: int | None

    @property
    def start(self) -> float:
        return self.base_media_decode_time / self.timescale

    @property
    def duration(self) -> float:
        return self.duration_ticks / self.timescale


@dataclass(frozen=True, slots=True)
class FragmentInfo:
    """A moof read against its init: `start`/`duration` in seconds come from the video
    track when the fragment has one, else from its first track."""

    tracks: tuple[TrackFragment, ...]
    start: float
    duration: float
    independent: bool


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise CmafError(f"box too short for its fields ({fmt} at {offset})") from None


def _full_box(box: Box) -> tuple[int, int, bytes]:
    """(version, flags, rest) of a FullBox."""
    payload = box.payload
    (word,) = _unpack(">I", payload, 0)
    return word >> 24, word & 0xFFFFFF, payload[4:]


def _child(children: list[Box], box_type: str, parent: str) -> Box:
    for box in children:
        if box.type == box_type:
            return box
    raise CmafError(f"{parent} has no {box_type}")


def _children(box: Box, max_box_bytes: int) -> list[Box]:
    return list(iter_children(box.payload, max_box_bytes))


def _parse_trak(trak: Box, max_box_bytes: int) -> tuple[int, TrackKind, int]:
    """(track_ID, kind, timescale) from tkhd, hdlr and mdhd."""
    children = _children(trak, max_box_bytes)
    version, _, tkhd = _full_box(_child(children, "tkhd", "trak"))
    # tkhd v1 has 64-bit creation/modification times before track_ID, v0 32-bit ones.
    (track_id,) = _unpack(">I", tkhd, 16 if version == 1 else 8)
    mdia = _children(_child(children, "mdia", "trak"), max_box_bytes)
    version, _, mdhd = _full_box(_child(mdia, "mdhd", "mdia"))
    (timescale,) = _unpack(">I", mdhd, 16 if version == 1 else 8)
    if timescale == 0:
        raise CmafError(f"track {track_id} has timescale 0")
    _, _, hdlr = _full_box(_child(mdia, "hdlr", "mdia"))
    handler = hdlr[4:8]  # after pre_defined
    if len(handler) < 4:
        raise CmafError("hdlr too short for its handler_type")
    return track_id, _HANDLERS.get(handler, "other"), timescale


def parse_init(data: bytes, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES) -> InitInfo:
    """The tracks of an init segment: `data` holds the moov, normally after an ftyp."""
    top = list(iter_children(data, max_box_bytes))
    moov = _children(_child(top, "moov", "init segment"), max_box_bytes)
    defaults: dict[int, tuple[int, int]] = {}
    for mvex in (b for b in moov if b.type == "mvex"):
        for trex in (b for b in _children(mvex, max_box_bytes) if b.type == "trex"):
            _, _, fields = _full_box(trex)
            # track_ID, default_sample_description_index, _duration, _size, _flags
            track_id, _, duration, _, flags = _unpack(">5I", fields, 0)
            defaults[track_id] = (duration, flags)
    tracks: dict[int, TrackInfo] = {}
    for trak in (b for b in moov if b.type == "trak"):
        track_id, kind, timescale = _parse_trak(trak, max_box_bytes)
        if track_id in tracks:
            raise CmafError(f"two tracks with track_ID {track_id}")
        duration, flags = defaults.get(track_id, (0, 0))
        tracks[track_id] = TrackInfo(track_id, kind, timescale, duration, flags)
    if not tracks:
        raise CmafError("moov has no track")
    return InitInfo(tracks)


def _parse_trun(
    trun: Box, default_duration: int, default_flags: int
) -> tuple[int, int, int | None]:
    """(sample count, summed duration, first sample's flags or None) of one trun."""
    _, flags, fields = _full_box(trun)
    (count,) = _unpack(">I", fields, 0)
    offset = 4
    if flags & _TRUN_DATA_OFFSET:
        offset += 4
    first_flags: int | None = None
    if flags & _TRUN_FIRST_SAMPLE_FLAGS:
        (first_flags,) = _unpack(">I", fields, offset)
        offset += 4
    per_sample = [
        bit for bit in (_TRUN_SAMPLE_DURATION, _TRUN_SAMPLE_SIZE, _TRUN_SAMPLE_FLAGS,
                        _TRUN_SAMPLE_CTO)
        if flags & bit
    ]
    stride = 4 * len(per_sample)
    # The count is checked against the bytes before any loop runs on it: a hostile
    # count of 2**32 - 1 must not make us iterate (or allocate) that many times.
    if count * stride > len(fields) - offset:
        raise CmafError(f"trun of {count} samples is longer than its box")
    if flags & _TRUN_SAMPLE_DURATION:
        # The duration is the first field of each sample's record, when present.
        records = struct.unpack_from(f">{count * len(per_sample)}I", fields, offset)
        duration = sum(records[:: len(per_sample)])
    else:
        duration = default_duration * count
    if count and first_flags is None:
        if flags & _TRUN_SAMPLE_FLAGS:
            position = offset + 4 * per_sample.index(_TRUN_SAMPLE_FLAGS)
            (first_flags,) = _unpack(">I", fields, position)
        else:
            first_flags = default_flags
    return count, duration, first_flags if count else None


def _parse_traf(traf: Box, init: InitInfo, max_box_bytes: int) -> TrackFragment:
    children = _children(traf, max_box_bytes)
    _, tf_flags, tfhd = _full_box(_child(children, "tfhd", "traf"))
    (track_id,) = _unpack(">I", tfhd, 0)
    track = init.tracks.get(track_id)
    if track is None:
        raise CmafError(f"traf of track {track_id}, which the moov does not have")
    offset = 4
    default_duration = track.default_sample_duration
    default_flags = track.default_sample_flags
    if tf_flags & _TFHD_BASE_DATA_OFFSET:
        offset += 8
    if tf_flags & _TFHD_SAMPLE_DESCRIPTION_INDEX:
        offset += 4
    if tf_flags & _TFHD_DEFAULT_SAMPLE_DURATION:
        (default_duration,) = _unpack(">I", tfhd, offset)
        offset += 4
    if tf_flags & _TFHD_DEFAULT_SAMPLE_SIZE:
        offset += 4
    if tf_flags & _TFHD_DEFAULT_SAMPLE_FLAGS:
        (default_flags,) = _unpack(">I", tfhd, offset)
    version, _, tfdt = _full_box(_child(children, "tfdt", "traf"))
    (decode_time,) = _unpack(">Q" if version == 1 else ">I", tfdt, 0)
    count = duration = 0
    first_flags: int | None = None
    for trun in (b for b in children if b.type == "trun"):
        n, ticks, flags = _parse_trun(trun, default_duration, default_flags)
        count += n
        duration += ticks
        if first_flags is None:
            first_flags = flags
    return TrackFragment(
        track_id, track.kind, track.timescale, decode_time, duration, count, first_flags
    )


def _is_sync(flags: int | None) -> bool:
    return flags is not None and not flags & SAMPLE_IS_NON_SYNC


def parse_fragment(
    moof: bytes, init: InitInfo, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES
) -> FragmentInfo:
    """Reads one moof box (`moof` is the whole box, header included) against its init."""
    top = list(iter_children(moof, max_box_bytes))
    if len(top) != 1 or top[0].type != "moof":
        raise CmafError("expected exactly one moof box")
    trafs = [
        _parse_traf(b, init, max_box_bytes)
        for b in _children(top[0], max_box_bytes) if b.type == "traf"
    ]
    if not trafs:
        raise CmafError("moof has no traf")
    video = next((t for t in trafs if t.kind == "video"), None)
    if init.has_video:
        # A part can begin a segment only if a decoder can start there: with its first
        # video sample a sync sample. A fragment carrying no video sample in a stream
        # that has video cannot start one (the next video sample may be a P-frame).
        independent = video is not None and _is_sync(video.first_sample_flags)
    else:
        independent = True  # every audio frame decodes on its own
    timing = video if video is not None else trafs[0]
    return FragmentInfo(tuple(trafs), timing.start, timing.duration, independent)
