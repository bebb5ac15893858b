"""Probing the head of a published FLV stream: sizes, frame rate and codecs, with PyAV.

The worker buffers the stream's first tags (header, metadata, sequence headers, media up
to the first video keyframe and a little more) and asks what it holds before planning
the ladder. PyAV decodes in C and blocks, so the probe runs in a thread.
"""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from typing import Any

import av

from transcode.ladder import SourceInfo

__all__ = ["ProbeError", "probe_flv"]


class ProbeError(Exception):
    """The bytes hold no decodable audio or video stream."""


async def probe_flv(head: bytes) -> SourceInfo:
    """What the FLV bytes `head` carry; raises ProbeError if nothing decodable."""
    return await asyncio.to_thread(_probe, head)


def _probe(head: bytes) -> SourceInfo:
    try:
        container = av.open(io.BytesIO(head), mode="r", format="flv")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ProbeError(f"not a readable FLV stream: {exc}") from exc
    try:
        video = next((s for s in container.streams.video if s.codec_context.width), None)
        audio = next((s for s in container.streams.audio if s.codec_context.sample_rate), None)
        if video is None and audio is None:
            raise ProbeError("no decodable audio or video in the stream's first "
                             f"{len(head)} bytes")
        width = height = None
        fps = None
        video_codec = profile = None
        level = None
        if video is not None:
            ctx: Any = video.codec_context
            width, height = int(ctx.width), int(ctx.height)
            fps = _fps(video)
            video_codec = str(ctx.name)
            profile = ctx.profile if isinstance(ctx.profile, str) else None
            level = int(ctx.level) if isinstance(ctx.level, int) and ctx.level > 0 else None
        audio_codec = sample_rate = None
        if audio is not None:
            audio_codec = str(audio.codec_context.name)
            sample_rate = int(audio.codec_context.sample_rate)
        return SourceInfo(width=width, height=height, fps=fps, video_codec=video_codec,
                          audio_codec=audio_codec, video_profile=profile, video_level=level,
                          audio_sample_rate=sample_rate)
    finally:
        container.close()


def _fps(stream: Any) -> float | None:
    """The frame rate: the declared average, else the one ffmpeg guessed from timestamps."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if isinstance(rate, Fraction | int | float) and 0 < rate < 1000:
            return round(float(rate), 3)
    return None
