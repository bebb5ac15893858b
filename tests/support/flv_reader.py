"""Test FLV media: made with ffmpeg's lavfi sources, read back into the FeedTags a
transcode worker is fed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from transcode.flv_feed import TAG_HEADER_SIZE, FeedTag, TagKind, flv_header

__all__ = ["head_bytes", "make_flv", "read_flv", "read_flv_bytes"]


def read_flv_bytes(data: bytes) -> list[FeedTag]:
    """Every tag of an FLV byte string, in order (the file header is not a tag)."""
    if data[:3] != b"FLV":
        raise ValueError("not an FLV file")
    offset = int.from_bytes(data[5:9], "big") + 4
    tags: list[FeedTag] = []
    while offset + TAG_HEADER_SIZE <= len(data):
        kind = data[offset] & 0x1F
        size = int.from_bytes(data[offset + 1:offset + 4], "big")
        timestamp = int.from_bytes(data[offset + 4:offset + 7], "big") | data[offset + 7] << 24
        body = data[offset + TAG_HEADER_SIZE:offset + TAG_HEADER_SIZE + size]
        if len(body) < size:
            break  # a truncated last tag
        offset += TAG_HEADER_SIZE + size + 4
        if kind in (TagKind.AUDIO, TagKind.VIDEO, TagKind.SCRIPT):
            tags.append(FeedTag.from_body(TagKind(kind), timestamp, body))
    return tags


def read_flv(path: Path) -> list[FeedTag]:
    """Every tag of the FLV file at `path`."""
    return read_flv_bytes(path.read_bytes())


def make_flv(path: Path, *, width: int = 640, height: int = 360, fps: int = 30,
             seconds: float = 6, gop: int = 30, video: bool = True,
             audio: bool = True) -> Path:
    """An H.264/AAC FLV of testsrc2 and a sine tone (44.1 kHz mono, so the ladder's
    48 kHz stereo shows it re-encoded)."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    args += ["-t", str(seconds)]
    if video:
        # ultrafast: Constrained Baseline, unlike the ladder's High profile.
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop),
                 "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    args += ["-f", "flv", str(path)]
    subprocess.run(args, check=True, timeout=60)
    return path


def head_bytes(tags: list[FeedTag], after_keyframe_ms: int = 1000,
               audio_only_ms: int = 3000) -> bytes:
    """An FLV header and the tags up to the first video keyframe plus `after_keyframe_ms`
    (or `audio_only_ms` of a stream without video): what a worker probes."""
    video = any(t.kind == TagKind.VIDEO for t in tags)
    audio = any(t.kind == TagKind.AUDIO for t in tags)
    out = [flv_header(audio=audio, video=video)]
    start: int | None = None
    for tag in tags:
        out.append(tag.data)
        if tag.config:
            continue
        if start is None and (tag.keyframe or not video):
            start = tag.timestamp_ms
        limit = after_keyframe_ms if video else audio_only_ms
        if start is not None and tag.timestamp_ms - start >= limit:
            break
    return b"".join(out)
