"""The ffmpeg command line for one run of a worker: FLV on stdin, HLS by HTTP PUT out.

One ffmpeg decodes the source once and `split`s the video into every rung, so the rungs
share one clock. Keyframes are forced at every multiple of the segment length whatever
the source's GOP, and no GOP is longer than a segment: the HLS muxer then cuts every rung
at the same instants and each segment starts with a keyframe.

Output layout, a contract with the segment receiver, for each rendition R:
    {base_url}/{run}/{R.name}/index.m3u8 and {base_url}/{run}/{R.name}/seg_%05d.ts
plus, in ladder mode, the source remuxed (`-c copy`) as rendition "source", the
recording at source quality. Passthrough has only that "source" output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ffmpeg

from transcode.ladder import SOURCE_NAME, Rendition, SourceInfo, x264_level

__all__ = ["hls_urls", "ladder_command"]

AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2


def hls_urls(base_url: str, run: int, name: str) -> tuple[str, str]:
    """(playlist URL, segment URL pattern) of one output."""
    root = f"{base_url.rstrip('/')}/{run}/{name}"
    return f"{root}/index.m3u8", f"{root}/seg_%05d.ts"


def _hls_args(base_url: str, run: int, name: str, segment_seconds: int) -> dict[str, Any]:
    _, segments = hls_urls(base_url, run, name)
    return {
        "f": "hls",
        "method": "PUT",
        # A new connection per object: simple for any receiver and robust to its restarts.
        "http_persistent": 0,
        "hls_time": segment_seconds,
        # Every segment stays listed and the playlist is rewritten after each one, so
        # the receiver learns each segment's duration as soon as it is written.
        "hls_list_size": 0,
        "hls_playlist_type": "event",
        "hls_segment_type": "mpegts",
        "hls_segment_filename": segments,
    }


def _audio_args(kbps: int) -> dict[str, Any]:
    return {"c:a": "aac", "b:a": f"{kbps}k", "ar": AUDIO_RATE, "ac": AUDIO_CHANNELS}


def _video_args(rendition: Rendition, fps: float, segment_seconds: int,
                preset: str) -> dict[str, Any]:
    kbps = rendition.video_kbps
    return {
        "c:v": "libx264",
        "preset": preset,
        "profile:v": "high",
        "level:v": f"{x264_level(rendition.height, fps) / 10:.1f}",
        "b:v": f"{kbps}k",
        "maxrate": f"{kbps}k",
        "bufsize": f"{kbps * 2}k",
        "force_key_frames": f"expr:gte(t,n_forced*{segment_seconds})",
        "sc_threshold": 0,
        # No GOP longer than a segment, whatever the source does.
        "g": max(1, math.floor(fps * segment_seconds)),
        "keyint_min": 1,
    }


def ladder_command(renditions: Sequence[Rendition], source: SourceInfo, *, base_url: str,
                   run: int, segment_seconds: int, preset: str,
                   ffmpeg_path: str = "ffmpeg") -> list[str]:
    """The full argument list (argv[0] is `ffmpeg_path`) for one run."""
    if not renditions:
        raise ValueError("no renditions to produce")
    inp = ffmpeg.input("pipe:0", f="flv")
    outputs: list[Any] = []
    copy_only = all(r.copy for r in renditions)
    encoded = [r for r in renditions if not r.copy and not r.audio_only]
    if encoded and not source.has_video:
        raise ValueError("video renditions for a source without video")
    branches = inp.video.filter_multi_output("split", len(encoded)) if encoded else None
    for rendition in renditions:
        hls = _hls_args(base_url, run, rendition.name, segment_seconds)
        playlist = hls_urls(base_url, run, rendition.name)[0]
        if rendition.copy:
            outputs.append(_copy_output(inp, source, playlist, hls))
        elif rendition.audio_only:
            outputs.append(ffmpeg.output(inp.audio, playlist,
                                         **_audio_args(rendition.audio_kbps), **hls))
        else:
            assert branches is not None
            fps = rendition.fps or source.fps or 30.0
            video = (
                branches[encoded.index(rendition)]
                .filter("fps", fps=_rate(fps))
                .filter("scale", rendition.width, rendition.height)
                .filter("format", "yuv420p")
            )
            streams = [video]
            extra: dict[str, Any] = {}
            if rendition.has_audio and source.has_audio:
                streams.append(inp.audio)
                extra = _audio_args(rendition.audio_kbps)
            outputs.append(ffmpeg.output(*streams, playlist,
                                         **_video_args(rendition, fps, segment_seconds, preset),
                                         **extra, **hls))
    if not copy_only:
        # The recording: the source itself, remuxed, beside the ladder.
        hls = _hls_args(base_url, run, SOURCE_NAME, segment_seconds)
        playlist = hls_urls(base_url, run, SOURCE_NAME)[0]
        outputs.append(_copy_output(inp, source, playlist, hls))
    compiled: list[str] = ffmpeg.merge_outputs(*outputs).compile(cmd=ffmpeg_path)
    # Global options go first: ffmpeg warns about (and may ignore) trailing ones.
    return [compiled[0], "-hide_banner", "-loglevel", "warning", *compiled[1:]]


def _copy_output(inp: Any, source: SourceInfo, playlist: str, hls: dict[str, Any]) -> Any:
    streams = []
    if source.has_video:
        streams.append(inp.video)
    if source.has_audio:
        streams.append(inp.audio)
    if not streams:
        raise ValueError("a source without audio or video")
    return ffmpeg.output(*streams, playlist, c="copy", **hls)


def _rate(fps: float) -> str:
    """ffmpeg's rational for common NTSC rates (29.97 -> 30000/1001), else the number."""
    for base in (24, 30, 60):
        if abs(fps - base * 1000 / 1001) < 0.01:
            return f"{base * 1000}/1001"
    return f"{fps:g}"
