"""Where a published stream's media goes: the `MediaSink` interface, and an FLV file sink.

An accepted publish (mediaserver/publishing.py) carries the sink its session's media made;
the RTMP connection or WHIP publisher hands it every metadata, audio and video message,
then closes it when the publisher goes away. The calls are synchronous and must not block:
the sink that feeds a transcode worker queues into a bounded buffer and counts what it
drops, so a slow ffmpeg never stalls the RTMP reader. `FlvFileSink` writes an .flv file
(tests, debugging).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeAlias

from mediaserver.amf0 import Amf0Value
from mediaserver.flv import metadata_tag, streams_in_metadata
from mediaserver.session_media_state import SessionMediaState
from transcode.flv_feed import TagKind, flv_header, flv_tag

__all__ = ["FlvFileSink", "MediaSink", "SinkFactory", "SinksOnly"]


class MediaSink(Protocol):
    """Receives one publish's media. Timestamps are RTMP milliseconds (32-bit, wrapping);
    payloads are FLV tag bodies (codec headers included)."""

    def on_metadata(self, data: dict[str, Amf0Value]) -> None: ...

    def on_audio(self, ts: int, payload: bytes) -> None: ...

    def on_video(self, ts: int, payload: bytes) -> None: ...

    async def close(self) -> None: ...


SinkFactory: TypeAlias = Callable[[int, int], MediaSink]
"""`factory(course_id, session_id)`: a sink for a publish that just went live."""


class FlvFileSink:
    """Writes the stream to an FLV file.

    The FLV header is written with the first message: from metadata, it says which streams
    exist (see flv.streams_in_metadata); media before any metadata announces both.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self.closed = False
        self.metadata: dict[str, Amf0Value] | None = None
        self.audio_tags = 0
        self.video_tags = 0

    def _open(self, *, audio: bool, video: bool) -> BinaryIO:
        if self._file is None:
            if self.closed:
                raise RuntimeError(f"{self.path}: sink already closed")
            self._file = self.path.open("wb")
            self._file.write(flv_header(audio=audio, video=video))
        return self._file

    def on_metadata(self, data: dict[str, Amf0Value]) -> None:
        self.metadata = dict(data)
        audio, video = streams_in_metadata(data)
        self._open(audio=audio, video=video).write(metadata_tag(data))

    def on_audio(self, ts: int, payload: bytes) -> None:
        self.audio_tags += 1
        self._open(audio=True, video=True).write(flv_tag(TagKind.AUDIO, ts, payload))

    def on_video(self, ts: int, payload: bytes) -> None:
        self.video_tags += 1
        self._open(audio=True, video=True).write(flv_tag(TagKind.VIDEO, ts, payload))

    async def close(self) -> None:
        self.closed = True
        if self._file is not None:
            self._file.close()
            self._file = None


class SinksOnly:
    """Live media that is only a sink per publish, from `factory(course_id, session_id)`:
    no session output, nothing to take up or finalise (tests, FLV capture). It is the
    `publishing.LiveMedia` of a node without transcoding."""

    def __init__(self, factory: SinkFactory) -> None:
        self._factory = factory

    async def open(self, session_id: int, course_id: int, stage: str = "live") -> None:
        return None

    def sink(self, course_id: int, session_id: int) -> MediaSink:
        return self._factory(course_id, session_id)

    async def finalise(self, session_id: int) -> str | None:
        return None

    async def forget(self, session_id: int) -> None:
        return None

    async def let_go(self, session_id: int) -> None:
        return None

    async def unfinished(self) -> list[SessionMediaState]:
        return []

    async def finalised(self, session_id: int) -> bool:
        return True

    async def recording_stored(self, session_id: int) -> bool:
        return False

    async def close(self) -> None:
        return None
