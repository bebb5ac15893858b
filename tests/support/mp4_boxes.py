"""Hand-built fragmented MP4 boxes for the CMAF tests: just the fields transcode/cmaf reads
(tkhd, mdhd, hdlr, trex; mfhd, tfhd, tfdt, trun), so a test states every flag and default
it depends on, including shapes Debian's ffmpeg never writes."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "NON_SYNC",
    "SYNC",
    "Sample",
    "Traf",
    "box",
    "ftyp",
    "full_box",
    "mdat",
    "moof",
    "moov",
    "stream",
]

SYNC = 0x02000000  # sample_depends_on = 2 (an I-frame), sync
NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample


def box(box_type: str, payload: bytes = b"", *, large: bool = False) -> bytes:
    kind = box_type.encode("latin-1")
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(box_type: str, version: int, flags: int, payload: bytes) -> bytes:
    return box(box_type, struct.pack(">I", version << 24 | flags) + payload)


def ftyp() -> bytes:
    return box("ftyp", b"iso5" + struct.pack(">I", 512) + b"iso5iso6cmfcmp41")


def _trak(track_id: int, handler: str, timescale: int, version: int) -> bytes:
    if version == 1:
        tkhd = struct.pack(">QQIIQ", 0, 0, track_id, 0, 0)
        mdhd = struct.pack(">QQIQ", 0, 0, timescale, 0) + b"\x55\xc4\x00\x00"
    else:
        tkhd = struct.pack(">IIIII", 0, 0, track_id, 0, 0)
        mdhd = struct.pack(">IIII", 0, 0, timescale, 0) + b"\x55\xc4\x00\x00"
    hdlr = struct.pack(">I4s12x", 0, handler.encode()) + b"Handler\x00"
    mdia = box("mdia", full_box("mdhd", version, 0, mdhd) + full_box("hdlr", 0, 0, hdlr)
               + box("minf", box("stbl")))
    return box("trak", full_box("tkhd", version, 3, tkhd + bytes(60)) + mdia)


def moov(
    tracks: list[tuple[int, str, int]],
    trex: dict[int, tuple[int, int]] | None = None,
    *, version: int = 0,
) -> bytes:
    """tracks: (track_ID, handler 'vide'/'soun'/..., timescale); trex: track_ID ->
    (default_sample_duration, default_sample_flags)."""
    mvhd = full_box("mvhd", 0, 0, bytes(96))
    traks = b"".join(_trak(i, h, t, version) for i, h, t in tracks)
    trexes = b"".join(
        full_box("trex", 0, 0, struct.pack(">5I", i, 1, d, 0, f))
        for i, (d, f) in (trex or {}).items()
    )
    return box("moov", mvhd + traks + box("mvex", trexes))


@dataclass(frozen=True)
class Sample:
    duration: int | None = None  # None: left to tfhd/trex
    flags: int | None = None  # None: left to first_sample_flags/tfhd/trex
    size: int = 10


@dataclass(frozen=True)
class Traf:
    track_id: int
    decode_time: int
    samples: list[Sample] = field(default_factory=list)
    default_duration: int | None = None  # tfhd default_sample_duration
    default_flags: int | None = None  # tfhd default_sample_flags
    first_sample_flags: int | None = None
    tfdt_version: int = 1

    def encode(self) -> bytes:
        tf_flags = 0x020000  # default-base-is-moof, as ffmpeg's cmaf movflag writes
        tfhd = struct.pack(">I", self.track_id)
        if self.default_duration is not None:
            tf_flags |= 0x08
            tfhd += struct.pack(">I", self.default_duration)
        if self.default_flags is not None:
            tf_flags |= 0x20
            tfhd += struct.pack(">I", self.default_flags)
        tfdt = struct.pack(">Q" if self.tfdt_version == 1 else ">I", self.decode_time)
        tr_flags = 0x001 | 0x200  # data offset, sizes
        if self.first_sample_flags is not None:
            tr_flags |= 0x004
        per_duration = any(s.duration is not None for s in self.samples)
        per_flags = any(s.flags is not None for s in self.samples)
        tr_flags |= (0x100 if per_duration else 0) | (0x400 if per_flags else 0)
        trun = struct.pack(">Ii", len(self.samples), 0)
        if self.first_sample_flags is not None:
            trun += struct.pack(">I", self.first_sample_flags)
        for s in self.samples:
            if per_duration:
                trun += struct.pack(">I", s.duration or 0)
            trun += struct.pack(">I", s.size)
            if per_flags:
                trun += struct.pack(">I", s.flags or 0)
        return box("traf", full_box("tfhd", 0, tf_flags, tfhd)
                   + full_box("tfdt", self.tfdt_version, 0, tfdt)
                   + full_box("trun", 0, tr_flags, trun))


def moof(sequence: int, *trafs: Traf) -> bytes:
    return box("moof", full_box("mfhd", 0, 0, struct.pack(">I", sequence))
               + b"".join(t.encode() for t in trafs))


def mdat(size: int = 32) -> bytes:
    return box("mdat", bytes(range(256)) * (size // 256) + bytes(size % 256))


def stream(fragments: list[Traf], *, tracks: list[tuple[int, str, int]]) -> bytes:
    """ftyp + moov + one moof+mdat per traf."""
    body = b"".join(moof(n + 1, t) + mdat() for n, t in enumerate(fragments))
    return ftyp() + moov(tracks) + body
