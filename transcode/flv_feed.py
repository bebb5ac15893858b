"""The bounded FLV buffer between a stream's RTMP reader and its ffmpeg's stdin.

The reader pushes whole FLV tags synchronously and is never blocked: when the buffer is
full the tag is dropped, and so is every following non-config tag until the next video
keyframe (a decoder cannot use frames whose references are gone). Dropped bytes are
counted and reported as `BufferOverflow`, at most once a second.

The feed also keeps the "init" tags: the latest onMetaData and the AVC / AAC sequence
headers. Each new ffmpeg run starts with an FLV file header and those tags, then resumes
at the next video keyframe (`restart`), so a restarted ffmpeg sees a decodable stream.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from transcode.events import BufferOverflow, EventSink

__all__ = ["TAG_HEADER_SIZE", "FeedTag", "FlvFeed", "TagKind", "flv_header", "flv_tag"]

log = logging.getLogger(__name__)

TAG_HEADER_SIZE = 11
_MAX_DATA_SIZE = 0xFFFFFF
_U32 = 0xFFFFFFFF
_FLAG_AUDIO = 0x04
_FLAG_VIDEO = 0x01
# FLV video: frame type is the high nibble of the first body byte (1 = keyframe); for AVC
# (codec id 7) the second byte is the AVC packet type (0 = sequence header).
_VIDEO_KEYFRAME = 1
_CODEC_AVC = 7
# FLV audio: sound format 10 is AAC; its second byte is the AAC packet type (0 = config).
_SOUND_AAC = 10
_OVERFLOW_REPORT_SECONDS = 1.0


class TagKind(enum.IntEnum):
    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


def flv_header(*, audio: bool = True, video: bool = True) -> bytes:
    """The 9-byte FLV file header followed by PreviousTagSize0."""
    flags = (_FLAG_AUDIO if audio else 0) | (_FLAG_VIDEO if video else 0)
    return b"FLV\x01" + bytes((flags,)) + (9).to_bytes(4, "big") + bytes(4)


def flv_tag(kind: TagKind | int, timestamp_ms: int, body: bytes) -> bytes:
    """One FLV tag around `body` and the PreviousTagSize that follows it.

    `timestamp_ms` is a 32-bit value that wraps, like RTMP's (FLV keeps its top byte apart).
    """
    size = len(body)
    if size > _MAX_DATA_SIZE:
        raise ValueError(f"tag body of {size} bytes does not fit a 3-byte size")
    timestamp_ms &= _U32
    header = (
        bytes((int(kind),))
        + size.to_bytes(3, "big")
        + (timestamp_ms & 0xFFFFFF).to_bytes(3, "big")
        + bytes((timestamp_ms >> 24,))
        + bytes(3)  # stream id: always 0
    )
    return header + body + (TAG_HEADER_SIZE + size).to_bytes(4, "big")


@dataclass(frozen=True)
class FeedTag:
    """One whole FLV tag (header, body, PreviousTagSize) and what it is."""

    data: bytes = field(repr=False)
    kind: TagKind
    keyframe: bool
    config: bool

    @classmethod
    def from_body(cls, kind: TagKind, timestamp_ms: int, body: bytes) -> FeedTag:
        """Frame an RTMP message payload (an FLV tag body) as a tag and classify it."""
        data = flv_tag(kind, timestamp_ms, body)
        keyframe, config = _classify(kind, body)
        return cls(data, kind, keyframe, config)

    @property
    def timestamp_ms(self) -> int:
        """The tag's 32-bit timestamp (FLV keeps its top byte after the lower three)."""
        low = int.from_bytes(self.data[4:7], "big")
        return low | (self.data[7] << 24)

    @property
    def body(self) -> bytes:
        return self.data[TAG_HEADER_SIZE:-4]

    @property
    def sequence_header(self) -> bool:
        """An AVC or AAC sequence header (codec configuration) rather than metadata."""
        return self.config and self.kind != TagKind.SCRIPT


def _classify(kind: TagKind, body: bytes) -> tuple[bool, bool]:
    """(video keyframe, config) for a tag body."""
    if kind == TagKind.VIDEO and body:
        frame_type, codec = body[0] >> 4, body[0] & 0x0F
        if codec == _CODEC_AVC and len(body) > 1 and body[1] == 0:
            return False, True
        return frame_type == _VIDEO_KEYFRAME, False
    if kind == TagKind.AUDIO and body:
        if body[0] >> 4 == _SOUND_AAC and len(body) > 1 and body[1] == 0:
            return False, True
        return False, False
    if kind == TagKind.SCRIPT:
        # The AMF0 string "onMetaData": marker 0x02, length 10, then the name.
        return False, body[:13] == b"\x02\x00\x0aonMetaData"
    return False, False


class FlvFeed:
    """A bounded queue of FLV tags: sync `push` for the reader, async `get` for the writer."""

    def __init__(self, capacity: int, *, stream: str = "", events: EventSink | None = None
                 ) -> None:
        self.capacity = capacity
        self.stream = stream
        self._events = events
        self._queue: deque[FeedTag] = deque()
        self._size = 0
        self._closed = False
        self._discarding = False
        self._dropping = False  # overflow: drop until the next video keyframe
        self._skip_to_keyframe = False  # a new run: the writer resumes at a keyframe
        self._wakeup = asyncio.Event()
        self.metadata: FeedTag | None = None
        self.video_config: FeedTag | None = None
        self.audio_config: FeedTag | None = None
        self.seen_video = False
        self.seen_audio = False
        self.dropped_bytes = 0
        self._unreported = 0
        self._last_report: float | None = None  # the first overflow is reported at once

    @property
    def size(self) -> int:
        """Bytes queued for the writer."""
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, tag: FeedTag) -> None:
        """Queue one tag; never blocks, never raises (a full buffer drops and counts)."""
        try:
            self._push(tag)
        except Exception:  # the RTMP reader must never see a worker's problem
            log.exception("stream %s: dropping a tag the feed could not queue", self.stream)

    def _push(self, tag: FeedTag) -> None:
        if self._closed or self._discarding:
            return
        if tag.kind == TagKind.VIDEO:
            self.seen_video = True
        elif tag.kind == TagKind.AUDIO:
            self.seen_audio = True
        if tag.config:
            self._remember(tag)
        if self._dropping and not tag.config:
            if not tag.keyframe:
                self._drop(tag)
                return
        if self._size + len(tag.data) > self.capacity:
            if tag.config:
                # Kept as init tags; the next run (or resume) replays them.
                return
            # Only video needs the skip to a keyframe: audio frames stand alone.
            self._dropping = self.seen_video
            self._drop(tag)
            return
        self._dropping = False
        self._queue.append(tag)
        self._size += len(tag.data)
        self._wakeup.set()

    def _remember(self, tag: FeedTag) -> None:
        if tag.kind == TagKind.SCRIPT:
            self.metadata = tag
        elif tag.kind == TagKind.VIDEO:
            self.video_config = tag
        else:
            self.audio_config = tag

    def _drop(self, tag: FeedTag) -> None:
        size = len(tag.data)
        self.dropped_bytes += size
        self._unreported += size
        now = time.monotonic()
        if self._last_report is None or now - self._last_report >= _OVERFLOW_REPORT_SECONDS:
            self._report(now)

    def _report(self, now: float) -> None:
        if not self._unreported:
            return
        dropped, self._unreported, self._last_report = self._unreported, 0, now
        log.warning("stream %s: transcode buffer full, dropped %d bytes (%d in all)",
                    self.stream, dropped, self.dropped_bytes)
        if self._events is not None:
            try:
                self._events(BufferOverflow(self.stream, dropped))
            except Exception:
                log.exception("stream %s: event sink failed", self.stream)

    def init_tags(self, *, audio: bool | None = None, video: bool | None = None) -> bytes:
        """An FLV file header, then the latest metadata and sequence headers.

        `audio`/`video` set the header's flags (what a probe found); by default, what was
        pushed so far.
        """
        audio = self.seen_audio if audio is None else audio
        video = self.seen_video if video is None else video
        parts = [flv_header(audio=audio, video=video)]
        for tag in (self.metadata, self.video_config, self.audio_config):
            if tag is not None:
                parts.append(tag.data)
        return b"".join(parts)

    def restart(self) -> None:
        """A new run begins: the writer skips to the next video keyframe (audio: at once)."""
        self._skip_to_keyframe = self.seen_video

    def close(self) -> None:
        """The input ended: `get` returns what is queued, then None."""
        self._closed = True
        self._wakeup.set()

    def discard(self) -> None:
        """Accept and forget every further push (the worker gave up)."""
        self._discarding = True
        self._queue.clear()
        self._size = 0
        self._wakeup.set()

    def flush_report(self) -> None:
        """Report drops not yet reported (the once-a-second limit held them back)."""
        self._report(time.monotonic())

    def _pop(self) -> FeedTag | None:
        while self._queue:
            tag = self._queue.popleft()
            self._size -= len(tag.data)
            if self._skip_to_keyframe:
                if tag.keyframe:
                    self._skip_to_keyframe = False
                elif not tag.config:
                    continue
            return tag
        return None

    async def get(self, max_bytes: int = 256 * 1024) -> list[FeedTag] | None:
        """The next queued tags (at least one, about `max_bytes` at most); None once the
        feed is closed and empty."""
        while True:
            batch: list[FeedTag] = []
            taken = 0
            while taken < max_bytes:
                tag = self._pop()
                if tag is None:
                    break
                batch.append(tag)
                taken += len(tag.data)
            if batch:
                return batch
            if self._closed or self._discarding:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
