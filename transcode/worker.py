"""One published stream's transcode worker: probe, plan, run ffmpeg, feed it, supervise it.

The RTMP reader `push`es FLV tags into a bounded `FlvFeed` and never waits. The worker's
own task buffers the head of the stream until it can be probed, plans the ladder, then
runs ffmpeg (`command.ladder_command`) and copies the feed into its stdin; only that task
waits on ffmpeg (drain). If ffmpeg dies while media is still coming, a new run (run + 1,
its own output folder) starts with the init tags and resumes at the next keyframe. Too
many deaths within a window and the worker gives up, still swallowing pushes so the
publisher is never blocked. Every ffmpeg it starts is waited for: no zombies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Literal

from config.settings import StreamingSettings
from transcode.command import ladder_command
from transcode.events import (
    Event,
    EventSink,
    RunStarted,
    WorkerFailed,
    WorkerRestarted,
    WorkerStopped,
)
from transcode.flv_feed import FeedTag, FlvFeed, TagKind, flv_header
from transcode.ladder import Rendition, SourceInfo, plan_ladder, plan_passthrough
from transcode.probe import ProbeError, probe_flv

__all__ = ["TranscodeWorker"]

log = logging.getLogger(__name__)

# The head to probe: a video keyframe plus this much, or this much audio when no video
# came, or at most this many bytes whatever came.
HEAD_AFTER_KEYFRAME_MS = 1000
HEAD_AUDIO_ONLY_MS = 3000
HEAD_MAX_BYTES = 8 * 1024 * 1024
STDERR_LINES = 12
_Outcome = Literal["ended", "died"]


class TranscodeWorker:
    """Turns one stream's FLV tags into fragmented MP4 renditions PUT under `base_url`/{run}/."""

    def __init__(self, stream: str, *, settings: StreamingSettings, base_url: str,
                 events: EventSink, ffmpeg: str = "ffmpeg", max_restarts: int = 5,
                 restart_window: float = 60.0) -> None:
        self.stream = stream
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.ffmpeg = ffmpeg
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self._events = events
        self.feed = FlvFeed(settings.worker_buffer_bytes, stream=stream, events=events)
        self.renditions: list[Rendition] = []
        self.source: SourceInfo | None = None
        self.run = 0
        self.restarts = 0
        self.failed = False
        self.stopped = False
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._killed = False
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self._deaths: deque[float] = deque()

    @property
    def dropped_bytes(self) -> int:
        return self.feed.dropped_bytes

    @property
    def pid(self) -> int | None:
        """The running ffmpeg's process id, if one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def push(self, tag: FeedTag) -> None:
        """Queue one tag for ffmpeg; returns at once whatever ffmpeg is doing."""
        self.feed.push(tag)
        if self._task is None and not self._killed:
            self._start()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first push made inside the event loop
        self._task = loop.create_task(self._main(), name=f"transcode {self.stream}")

    # The brief's API takes a timeout: ffmpeg is killed, not just abandoned, when it expires.
    async def finish(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """The input ended: let ffmpeg write its last segments and exit (WorkerStopped).

        After `timeout` seconds ffmpeg is killed instead.
        """
        self.feed.close()
        if self._task is None and not self._killed:
            self._start()
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("stream %s: ffmpeg did not finish within %.0f s; killing it",
                        self.stream, timeout)
            await self.kill()

    async def kill(self) -> None:
        """Stop at once: kill ffmpeg, end the worker's task, swallow further pushes."""
        self._killed = True
        self.feed.discard()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if proc is not None:
            await proc.wait()

    def _emit(self, event: Event) -> None:
        try:
            self._events(event)
        except Exception:
            log.exception("stream %s: event sink failed on %r", self.stream, event)

    async def _main(self) -> None:
        try:
            head = await self._collect_head()
            if not any(not tag.config for tag in head):
                log.info("stream %s: input ended before any media", self.stream)
                self.stopped = True
                self._emit(WorkerStopped(self.stream))
                return
            media = b"".join(tag.data for tag in head)
            try:
                header = flv_header(audio=self.feed.seen_audio, video=self.feed.seen_video)
                source = await probe_flv(header + media)
            except ProbeError as exc:
                self._give_up(f"probe failed: {exc}")
                return
            self.source = source
            if self.settings.transcode_mode == "passthrough":
                self.renditions = plan_passthrough(source)
            else:
                self.renditions = plan_ladder(self.settings.ladder, source)
            log.info("stream %s: %s -> %s", self.stream, source,
                     ", ".join(r.name for r in self.renditions))
            await self._runs(flv_header(audio=source.has_audio, video=source.has_video)
                             + media)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("stream %s: transcode worker crashed", self.stream)
            self._give_up(f"worker error: {exc!r}")

    async def _collect_head(self) -> list[FeedTag]:
        """Tags from the start until the stream can be probed (or the input ended)."""
        head: list[FeedTag] = []
        size = 0
        first_keyframe: int | None = None
        first_audio: int | None = None
        while True:
            batch = await self.feed.get()
            if batch is None:
                return head
            last = None
            for tag in batch:
                head.append(tag)
                size += len(tag.data)
                if tag.config:
                    continue
                last = tag.timestamp_ms
                if tag.keyframe and first_keyframe is None:
                    first_keyframe = last
                if tag.kind == TagKind.AUDIO and first_audio is None:
                    first_audio = last
            if size >= HEAD_MAX_BYTES or last is None:
                if size >= HEAD_MAX_BYTES:
                    return head
                continue
            if first_keyframe is not None and last - first_keyframe >= HEAD_AFTER_KEYFRAME_MS:
                return head
            if (not self.feed.seen_video and first_audio is not None
                    and last - first_audio >= HEAD_AUDIO_ONLY_MS):
                return head

    async def _runs(self, first_input: bytes) -> None:
        assert self.source is not None
        pending = first_input
        loop = asyncio.get_running_loop()
        while True:
            self.run += 1
            recording = None
            if self.source is not None and self.settings.transcode_mode != "passthrough":
                recording = plan_passthrough(self.source)[0]
            self._emit(RunStarted(self.stream, self.run, tuple(self.renditions), recording))
            outcome, reason = await self._one_run(pending)
            if outcome == "ended" or (self.feed.closed and self.feed.size == 0):
                if outcome == "died":
                    log.warning("stream %s: ffmpeg ended badly at the end of input: %s",
                                self.stream, reason)
                self.stopped = True
                self._emit(WorkerStopped(self.stream))
                return
            now = loop.time()
            self._deaths.append(now)
            while now - self._deaths[0] > self.restart_window:
                self._deaths.popleft()
            if len(self._deaths) > self.max_restarts:
                self._give_up(f"ffmpeg died {len(self._deaths)} times within "
                              f"{self.restart_window:g} s; last: {reason}")
                return
            self.restarts += 1
            log.warning("stream %s: run %d ended (%s); starting run %d",
                        self.stream, self.run, reason, self.run + 1)
            self._emit(WorkerRestarted(self.stream, self.run + 1, reason))
            # A short, growing pause: a crash loop should not spin, a one-off restarts fast.
            await asyncio.sleep(min(1.0, 0.1 * 2 ** (len(self._deaths) - 1)))
            self.feed.restart()
            pending = self.feed.init_tags(audio=self.source.has_audio,
                                          video=self.source.has_video)

    async def _one_run(self, pending: bytes) -> tuple[_Outcome, str]:
        assert self.source is not None
        args = ladder_command(self.renditions, self.source, base_url=self.base_url,
                              run=self.run, segment_seconds=self.settings.segment_seconds,
                              preset=self.settings.x264_preset,
                              part_seconds=self.settings.part_ms / 1000,
                              ffmpeg_path=self.ffmpeg)
        self._stderr_tail.clear()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            return "died", f"could not start {self.ffmpeg}: {exc}"
        self._proc = proc
        assert proc.stderr is not None
        stderr_task = asyncio.create_task(self._read_stderr(proc.stderr))
        exit_task = asyncio.create_task(proc.wait())
        try:
            if await self._copy(proc, exit_task, pending):
                await self._close_stdin(proc)
                await exit_task
                await stderr_task
                if proc.returncode != 0:
                    return "died", self._reason(proc)
                return "ended", ""
            await exit_task
            await stderr_task
            return "died", self._reason(proc)
        finally:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            await asyncio.shield(proc.wait())  # reaped even when cancelled
            exit_task.cancel()
            stderr_task.cancel()
            self._proc = None

    async def _copy(self, proc: asyncio.subprocess.Process, exit_task: asyncio.Task[int],
                    pending: bytes) -> bool:
        """Feed ffmpeg until the input ends (True) or ffmpeg exits (False)."""
        stdin = proc.stdin
        assert stdin is not None
        try:
            if pending:
                stdin.write(pending)
                await stdin.drain()
            while True:
                getter = asyncio.create_task(self.feed.get())
                done, _ = await asyncio.wait({getter, exit_task},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return False
                batch = getter.result()
                if batch is None:
                    return True
                stdin.write(b"".join(tag.data for tag in batch))
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False

    @staticmethod
    async def _close_stdin(proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is None:
            return
        proc.stdin.close()
        try:
            await proc.stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the reader's limit
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text)
                log.info("stream %s ffmpeg run %d: %s", self.stream, self.run, text)

    def _reason(self, proc: asyncio.subprocess.Process) -> str:
        tail = " | ".join(self._stderr_tail)
        reason = f"ffmpeg exited with status {proc.returncode}"
        return f"{reason}: {tail}" if tail else reason

    def _give_up(self, reason: str) -> None:
        self.failed = True
        self.feed.discard()
        log.error("stream %s: transcoding failed, giving up: %s", self.stream, reason)
        self._emit(WorkerFailed(self.stream, reason))
