"""The ffmpeg command line for one run of a worker: FLV on stdin, fragmented MP4 out.

One ffmpeg decodes the source once and `split`s the video into every rung, so the rungs
share one clock. Keyframes are forced at every multiple of the segment length whatever
the source's GOP, and no GOP is longer than a segment: every rung then starts a segment
at the same instants, each on a keyframe. The sound is encoded once, as its own output
(the audio rendition the video rungs share).

Each output is one fragmented MP4 (CMAF: an init segment, then a `moof`+`mdat` fragment
about every part target, and at every keyframe) written as the media comes, over one
long chunked HTTP PUT per output. `transcode/cmaf/` cuts it into LL-HLS parts and
segments. The layout, a contract with the segment receiver, for each rendition R:
    {base_url}/{run}/{R.name}/stream.mp4
plus, in ladder mode, the source remuxed (`-c copy`) as rendition "source", the
recording at source quality. Passthrough has only that "source" output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ffmpeg

from transcode.ladder import SOURCE_NAME, Rendition, SourceInfo, x264_level
from transcode.part_timing import fragment_seconds

__all__ = ["STREAM_NAME", "X264_LOW_DELAY", "ladder_command", "stream_url"]

AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2
STREAM_NAME = "stream.mp4"
# CMAF fragments written as the media comes: no seeking back (empty_moov), each fragment
# self-contained (default_base_moof), and no index at the end for a stream that never ends.
_MOVFLAGS = "+frag_keyframe+empty_moov+default_base_moof+cmaf+skip_trailer"
# x264's delay for the least quality: no B-frames, a 3-frame lookahead (keeps mbtree,
# which keeps a talking head and slides sharp at low bitrates) and sliced threads (frame
# threads hold a frame each): 4 frames (133 ms at 30 fps) instead of 17, for -0.13 SSIM dB
# at 720p and -0.50 at 360p, and less CPU. Measured by scripts/bench/encoder.py (figures in
# scripts/bench/README.md); a 5-frame lookahead loses 0.04 dB less for 67 ms more, which the
# 2 s glass-to-glass budget could not spare; `-tune zerolatency` loses twice as much.
X264_LOW_DELAY: dict[str, Any] = {
    "x264-params": "bframes=0:rc-lookahead=3:sync-lookahead=0:sliced-threads=1",
}


def stream_url(base_url: str, run: int, name: str) -> str:
    """Where one output of one run is written."""
    return f"{base_url.rstrip('/')}/{run}/{name}/{STREAM_NAME}"


def _mp4_args(base_url: str, rendition: Rendition, part_seconds: float | None
              ) -> dict[str, Any]:
    """`part_seconds` None: an output nobody watches live, cut only at keyframes."""
    args: dict[str, Any] = {"f": "mp4", "movflags": _MOVFLAGS}
    if part_seconds is not None:
        args["frag_duration"] = round(fragment_seconds(rendition, part_seconds) * 1_000_000)
    if base_url.startswith(("http://", "https://")):
        args["method"] = "PUT"
    return args


def _audio_args(kbps: int) -> dict[str, Any]:
    return {"c:a": "aac", "b:a": f"{kbps}k", "ar": AUDIO_RATE, "ac": AUDIO_CHANNELS}


def _video_args(rendition: Rendition, fps: float, segment_seconds: int,
                preset: str) -> dict[str, Any]:
    kbps = rendition.video_kbps
    return {
        "c:v": "libx264",
        "preset": preset,
        **X264_LOW_DELAY,
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
                   run: int, segment_seconds: int, preset: str, part_seconds: float = 0.2,
                   ffmpeg_path: str = "ffmpeg") -> list[str]:
    """The full argument list (argv[0] is `ffmpeg_path`) for one run."""
    if not renditions:
        raise ValueError("no renditions to produce")
    # Slice threads for decoding: frame threads would hold a frame each (two here, more
    # on a bigger machine) before the ladder sees it; a source's H.264 decodes fast enough.
    inp = ffmpeg.input("pipe:0", f="flv", thread_type="slice")
    outputs: list[Any] = []
    copy_only = all(r.copy for r in renditions)
    encoded = [r for r in renditions if not r.copy and not r.audio_only]
    if encoded and not source.has_video:
        raise ValueError("video renditions for a source without video")
    branches = inp.video.filter_multi_output("split", len(encoded)) if encoded else None
    for rendition in renditions:
        url = stream_url(base_url, run, rendition.name)
        mp4 = _mp4_args(base_url, rendition, part_seconds)
        if rendition.copy:
            outputs.append(_copy_output(inp, source, url, mp4))
        elif rendition.audio_only:
            outputs.append(ffmpeg.output(inp.audio, url, **_audio_args(rendition.audio_kbps),
                                         **mp4))
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
            outputs.append(ffmpeg.output(*streams, url,
                                         **_video_args(rendition, fps, segment_seconds, preset),
                                         **extra, **mp4))
    if not copy_only:
        # The recording: the source itself, remuxed, beside the ladder.
        recording = Rendition(SOURCE_NAME, SOURCE_NAME, source.width or 0,
                              source.height or 0, 0, 0, source.has_audio, "", copy=True,
                              fps=source.fps)
        outputs.append(_copy_output(inp, source, stream_url(base_url, run, SOURCE_NAME),
                                    _mp4_args(base_url, recording, None)))
    compiled: list[str] = ffmpeg.merge_outputs(*outputs).compile(cmd=ffmpeg_path)
    # Global options go first: ffmpeg warns about (and may ignore) trailing ones.
    return [compiled[0], "-hide_banner", "-loglevel", "warning", *compiled[1:]]


def _copy_output(inp: Any, source: SourceInfo, url: str, mp4: dict[str, Any]) -> Any:
    streams = []
    if source.has_video:
        streams.append(inp.video)
    if source.has_audio:
        streams.append(inp.audio)
    if not streams:
        raise ValueError("a source without audio or video")
    return ffmpeg.output(*streams, url, c="copy", **mp4)


def _rate(fps: float) -> str:
    """ffmpeg's rational for common NTSC rates (29.97 -> 30000/1001), else the number."""
    for base in (24, 30, 60):
        if abs(fps - base * 1000 / 1001) < 0.01:
            return f"{base * 1000}/1001"
    return f"{fps:g}"
