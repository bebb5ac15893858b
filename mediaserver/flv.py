"""FLV as RTMP publishes it: the metadata tag, which streams the metadata announces, and
recognising Enhanced RTMP.

RTMP audio (8), video (9) and data (18) message payloads are exactly FLV tag bodies, so a
published stream becomes an FLV byte stream by framing each payload as a tag; that is what
ffmpeg is fed (`-f flv -i pipe:`) and what `FlvFileSink` writes. The framing itself (the
file header, a tag around a body) is transcode.flv_feed's: the workers read it.

Also here: recognising Enhanced RTMP tag bodies (HEVC/AV1/VP9 via FourCC, OBS 29+),
which this server refuses because the FLV consumers downstream (Debian's ffmpeg 5.1)
cannot read them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mediaserver.amf0 import Amf0Value, EcmaArray, encode
from transcode.flv_feed import TagKind, flv_tag

__all__ = [
    "enhanced_audio",
    "enhanced_video_fourcc",
    "metadata_fourcc",
    "metadata_tag",
    "onmetadata",
    "streams_in_metadata",
]

_U32 = 0xFFFFFFFF
# Enhanced RTMP: the video tag's first bit (IsExHeader) says a FourCC follows the first
# byte instead of the classic codec id in its low nibble.
_VIDEO_EX_HEADER = 0x80
# Enhanced RTMP audio: SoundFormat 9 (high nibble) means ExHeader with an audio FourCC.
_AUDIO_EX_HEADER_FORMAT = 9
# Classic FLV video codec ids fit in 4 bits; a larger onMetaData videocodecid is a FourCC.
_MAX_CLASSIC_CODEC_ID = 0x0F


def onmetadata(values: list[Amf0Value]) -> dict[str, Amf0Value] | None:
    """The stream's metadata in a data message's AMF0 values: `onMetaData` and its object,
    after the `@setDataFrame` that encoders put in front of it; None for any other message."""
    if values and values[0] == "@setDataFrame":
        values = values[1:]
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return None
    return values[1]


def metadata_tag(metadata: Mapping[str, Amf0Value], timestamp: int = 0) -> bytes:
    """A script tag `onMetaData` carrying `metadata` as an ECMA array, as ffmpeg writes it."""
    return flv_tag(TagKind.SCRIPT, timestamp, encode("onMetaData", EcmaArray(metadata)))


def streams_in_metadata(metadata: Mapping[str, Amf0Value]) -> tuple[bool, bool]:
    """(has audio, has video) as an encoder's onMetaData tells it.

    OBS and ffmpeg list `audiocodecid` / `videocodecid` only for streams they send, so a
    header written from metadata can say "no audio" and spare ffmpeg's probe the wait
    for audio that never comes. Metadata naming neither means we cannot tell: both.
    """
    audio = "audiocodecid" in metadata
    video = "videocodecid" in metadata
    if not (audio or video):
        return True, True
    return audio, video


def _fourcc_text(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace")


def enhanced_video_fourcc(data: bytes) -> str | None:
    """The FourCC of an Enhanced RTMP video tag body ('hvc1', 'av01', 'vp09'), else None."""
    if not data or not data[0] & _VIDEO_EX_HEADER:
        return None
    return _fourcc_text(data[1:5]) if len(data) >= 5 else "?"


def enhanced_audio(data: bytes) -> bool:
    """Whether an audio tag body uses the Enhanced RTMP ExHeader (SoundFormat 9)."""
    return bool(data) and data[0] >> 4 == _AUDIO_EX_HEADER_FORMAT


def metadata_fourcc(metadata: Mapping[str, Amf0Value]) -> str | None:
    """The video FourCC when onMetaData announces an Enhanced RTMP codec, else None.

    Enhanced RTMP writes `videocodecid` as the FourCC's 32-bit value ('hvc1' is
    0x68766331) instead of a classic id (7 for H.264).
    """
    value = metadata.get("videocodecid")
    if isinstance(value, bool) or not isinstance(value, float | int):
        return None
    if not math.isfinite(value):  # AMF0 numbers may be inf or NaN, which int() refuses
        return None
    number = int(value)
    if number <= _MAX_CLASSIC_CODEC_ID or number > _U32:
        return None
    return _fourcc_text(number.to_bytes(4, "big"))
