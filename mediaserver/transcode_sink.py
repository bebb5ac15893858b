"""The media sink that feeds a publish into its transcode worker, measuring what comes in.

Calls come from the RTMP reader and must never block: the worker's `push` only queues
into its bounded feed. The sink also keeps what live-status shows of the input (bitrate
over the last seconds) and counts bytes for /metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

from mediaserver.amf0 import Amf0Value, EcmaArray, encode
from transcode.flv_feed import FeedTag, TagKind
from transcode.worker import TranscodeWorker

__all__ = ["TranscodeSink"]

# Input bitrate is averaged over this many seconds of arrivals.
_BITRATE_WINDOW = 5.0


class TranscodeSink:
    """One publish's media into `worker`. `on_bytes(n)` counts input for metrics;
    `on_close()` runs when the publisher is gone (it must return quickly)."""

    def __init__(
        self,
        worker: TranscodeWorker,
        *,
        on_bytes: Callable[[int], None],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        self.worker = worker
        self._on_bytes = on_bytes
        self._on_close = on_close
        self._arrivals: deque[tuple[float, int]] = deque()
        self._window_bytes = 0
        self.total_bytes = 0
        self.closed = False

    def _count(self, size: int) -> None:
        now = time.monotonic()
        self.total_bytes += size
        self._arrivals.append((now, size))
        self._window_bytes += size
        while self._arrivals and now - self._arrivals[0][0] > _BITRATE_WINDOW:
            self._window_bytes -= self._arrivals.popleft()[1]
        self._on_bytes(size)

    @property
    def bitrate_kbps(self) -> int:
        """Input bitrate over the last few seconds."""
        if not self._arrivals:
            return 0
        span = max(time.monotonic() - self._arrivals[0][0], 1.0)
        return int(self._window_bytes * 8 / span / 1000)

    def on_metadata(self, data: dict[str, Amf0Value]) -> None:
        body = encode("onMetaData", EcmaArray(data))
        self._count(len(body))
        self.worker.push(FeedTag.from_body(TagKind.SCRIPT, 0, body))

    def on_audio(self, ts: int, payload: bytes) -> None:
        self._count(len(payload))
        self.worker.push(FeedTag.from_body(TagKind.AUDIO, ts, payload))

    def on_video(self, ts: int, payload: bytes) -> None:
        self._count(len(payload))
        self.worker.push(FeedTag.from_body(TagKind.VIDEO, ts, payload))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._on_close()
