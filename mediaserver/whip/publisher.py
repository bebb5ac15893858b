"""One WHIP publish: a WebRTC peer connection whose tracks feed a live session's sink.

The publish is set up by the endpoint (authorize, claim the course, go live, make the
sink: the sequence of mediaserver/publishing.py, as for an RTMP publish), then runs here
until it ends: the client DELETEs the resource, the connection fails or closes, every
track ends, ICE does not connect or no media comes within `timeout` (RTMP's), its
publication is stopped (the class ended from the web app, its key revoked), or the
server shuts down. Ending closes the sink, then `on_gone` says the publisher left
(`Publishing.publisher_left`, as for RTMP), so the reconnect grace period applies exactly
as for RTMP.

aiortc decodes the received media in its own threads; the frames are re-encoded
(frame_encoder.py) on this publish's single encoder thread, and the tag bodies come back
to the event loop in order to be pushed into the sink. When the encoder falls behind by
about a second, video frames are dropped (and counted) rather than queued.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Awaitable, Callable

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from mediaserver.media_sink import MediaSink
from mediaserver.publisher_slots import Publication
from mediaserver.whip.frame_encoder import EncodedTag, FrameEncoder
from mediaserver.whip.media_clock import MediaClock

__all__ = ["WhipPublisher"]

log = logging.getLogger("mediaserver.whip")

# Frames waiting for the encoder thread beyond which new ones are dropped: about 1 s.
MAX_PENDING_VIDEO = 30
MAX_PENDING_AUDIO = 50  # 20 ms Opus frames


class WhipPublisher:
    """A running WHIP publish. Call `start()` once the answer is made; `close()` ends it."""

    def __init__(
        self,
        resource_id: str,
        publication: Publication,
        pc: RTCPeerConnection,
        tracks: list[MediaStreamTrack],
        sink: MediaSink,
        encoder: FrameEncoder,
        *,
        on_gone: Callable[[WhipPublisher], Awaitable[None]],
        timeout: float,
        sink_timeout: float = 30.0,
    ) -> None:
        self.resource_id = resource_id
        self.publication = publication
        self.pc = pc
        self.tracks = tracks
        self._sink: MediaSink | None = sink
        self.encoder = encoder
        self._on_gone = on_gone
        self._timeout = timeout
        self._sink_timeout = sink_timeout
        self._clock = MediaClock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"whip-{resource_id[:8]}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._last_frame = 0.0  # loop time of the latest frame from any track
        self._pending = {"video": 0, "audio": 0}
        self.dropped = {"video": 0, "audio": 0}
        self.encode_errors = 0
        self.end_reason = ""

    @property
    def course_id(self) -> int:
        return self.publication.course_id

    @property
    def closed(self) -> bool:
        return self._closing is not None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.pc.on("connectionstatechange", self._state_changed)
        if self.pc.connectionState == "connected":
            self._connected.set()
        consumers = [self._spawn(self._consume(track)) for track in self.tracks]
        self._spawn(self._watch(consumers))

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ watching

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.info("whip %s: course %d: connection %s", self.resource_id[:8], self.course_id,
                 state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self.end(f"the WebRTC connection {state}")

    async def _watch(self, consumers: list[asyncio.Task[None]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
        except TimeoutError:
            self.end(f"not connected within {self._timeout:g} s")
            return
        # Like RTMP's idle timeout: a connection that stays up but sends nothing ends.
        loop = asyncio.get_running_loop()
        self._last_frame = loop.time()
        tracks_done = asyncio.gather(*consumers, return_exceptions=True)
        while not tracks_done.done():
            left = self._last_frame + self._timeout - loop.time()
            if left <= 0:
                self.end(f"no media for {self._timeout:g} s")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tracks_done), left)
        self.end("every track ended")

    async def _consume(self, track: MediaStreamTrack) -> None:
        kind = track.kind
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self._last_frame = asyncio.get_running_loop().time()
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                ts = self._clock.ms(kind, frame.pts, frame.time_base)
                limit = MAX_PENDING_VIDEO if kind == "video" else MAX_PENDING_AUDIO
                if self._pending[kind] >= limit:
                    self.dropped[kind] += 1
                    if self.dropped[kind] in (1, 100) or self.dropped[kind] % 1000 == 0:
                        log.warning("whip %s: the encoder falls behind: %d %s frames dropped",
                                    self.resource_id[:8], self.dropped[kind], kind)
                    continue
                self._pending[kind] += 1
                self._executor.submit(self._encode, kind, frame, ts)

    # ------------------------------------------------------------------ encoding

    def _encode(self, kind: str, frame: av.VideoFrame | av.AudioFrame, ts: int) -> None:
        """On the encoder thread."""
        tags: list[EncodedTag] = []
        try:
            if isinstance(frame, av.VideoFrame):
                tags = self.encoder.video(frame, ts)
            else:
                tags = self.encoder.audio(frame, ts)
        except Exception:
            self.encode_errors += 1
            if self.encode_errors == 1:
                log.exception("whip %s: encoding a %s frame failed", self.resource_id[:8], kind)
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to feed
            self._loop.call_soon_threadsafe(self._deliver, kind, tags)

    def _deliver(self, kind: str | None, tags: list[EncodedTag]) -> None:
        if kind is not None:
            self._pending[kind] -= 1
        sink = self._sink
        if sink is None:
            return
        for tag in tags:
            if tag.kind == "metadata":
                sink.on_metadata(tag.metadata)
            elif tag.kind == "video":
                sink.on_video(tag.ts_ms, tag.body)
            else:
                sink.on_audio(tag.ts_ms, tag.body)

    # ------------------------------------------------------------------ ending

    def end(self, reason: str) -> asyncio.Task[None]:
        """End the publish (once); the task finishes when the course is free again."""
        if self._closing is None:
            self.end_reason = reason
            log.info("whip %s: course %d: publish ends: %s", self.resource_id[:8],
                     self.course_id, reason)
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def close(self, reason: str) -> None:
        await asyncio.shield(self.end(reason))

    async def _close(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()
        try:
            # Same thread as every encode: all earlier tags are delivered before these.
            tags = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.encoder.flush)
            self._deliver(None, tags)
        except Exception:
            log.exception("whip %s: flushing the encoder failed", self.resource_id[:8])
        self._executor.shutdown(wait=False, cancel_futures=True)
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                async with asyncio.timeout(self._sink_timeout):
                    await sink.close()
            except Exception:
                log.exception("whip %s: closing the media sink failed", self.resource_id[:8])
        dropped = self.dropped["video"] + self.dropped["audio"]
        log.info("whip %s: course %d: %d video / %d audio frames encoded, %d dropped",
                 self.resource_id[:8], self.course_id, self.encoder.video_frames,
                 self.encoder.audio_frames, dropped)
        await self._on_gone(self)
