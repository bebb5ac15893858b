"""The media of each live session on this node: its workers, its output, its recording.

mediaserver/publishing.py says when a session's media opens, gets a new publisher and
ends; this module does the media work of each step:

- `open` makes (or takes up again) a session's `SessionOutput` and upload queue: what an
  earlier process recorded is numbered on, and the session's stage is kept on disk
  (mediaserver.session_media_state) so a restart can resume it;
- `sink` gives each publish a transcode worker, whose ffmpeg output reaches the session's
  output through the segment receiver under a random token (a reconnect is a new worker:
  a new epoch, so a discontinuity in the playlists);
- `finalise` closes the current publisher's worker, waits for the others, and turns the
  output into the recording (VOD playlists, MP4), flushing the uploads;
- `forget` drops the stage file once the control plane knows the recording is ready;
- `let_go` drops a session another node carries now, storing no recording.

A session's spool is sent by its own queue only: the queue locks it, and the
pending-uploads pass hands it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config.loading import SettingsError
from config.settings import Settings
from mediaserver.metrics import Metrics
from mediaserver.session_media_state import (
    SessionMediaState,
    Stage,
    read_states,
    remove_state,
    write_state,
)
from mediaserver.transcode_sink import TranscodeSink
from transcode.events import Event, RunStarted, SpoolRefused, WorkerFailed
from transcode.recording_quality import check_quality
from transcode.segment_receiver import SegmentReceiver
from transcode.session_output import SessionOutput
from transcode.storage.backend import Storage
from transcode.storage.spool_budget import SpoolBudget, default_spool_bytes
from transcode.storage.upload_queue import UploadQueue
from transcode.worker import TranscodeWorker

__all__ = ["SessionMedia"]

log = logging.getLogger(__name__)

# How long a finishing ffmpeg may take to write its last segments.
_FINISH_TIMEOUT = 20.0
# How long the end of a session may wait for its uploads before giving up (they stay
# spooled on disk and are sent by the queue's next start).
_FLUSH_TIMEOUT = 60.0


@dataclass(eq=False)
class _LiveSession:
    """One live session's media while it lasts (across publisher reconnects)."""

    session_id: int
    course_id: int
    output: SessionOutput
    queue: UploadQueue
    since: float = field(default_factory=time.time)
    workers: dict[str, TranscodeWorker] = field(default_factory=dict)  # by token
    sink: TranscodeSink | None = None  # the current publisher's
    finishing: set[asyncio.Task[None]] = field(default_factory=set)
    # Set once the queue owns its spool and the output took up what was recorded before.
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    refusing: bool = False  # the spool refused media (logged once per session)


class SessionMedia:
    """The live sessions' media of this node; see the module docstring. `viewers(session_id)`
    counts the players watching a session now (HLS delivery knows)."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage,
        receiver: SegmentReceiver,
        viewers: Callable[[int], int] = lambda session_id: 0,
        metrics: Metrics | None = None,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self._streaming = settings.streaming
        try:  # refused at start, not at the end of the first class
            check_quality(settings.streaming.recording_quality)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        self._storage = storage
        self._receiver = receiver
        self._viewers = viewers
        self._metrics = metrics
        self._ffmpeg = ffmpeg
        self._work_dir = settings.server.data_dir / "work"
        self._spool_dir = settings.server.data_dir / "spool"
        # One ceiling for every session's spool (the setting, else a share of the disk).
        self.spool_budget = SpoolBudget(settings.storage.spool_max_bytes
                                        or default_spool_bytes(settings.server.data_dir))
        log.info("upload spool: at most %d MB under %s", self.spool_budget.max_bytes >> 20,
                 self._spool_dir)
        self._sessions: dict[int, _LiveSession] = {}
        self._by_token: dict[str, _LiveSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ opening

    def _new_session(self, session_id: int, course_id: int) -> _LiveSession:
        queue = UploadQueue(self._storage, self._spool_dir / f"session-{session_id}",
                            events=self._on_event, budget=self.spool_budget)
        output = SessionOutput(
            session_id,
            queue,
            segment_seconds=self._streaming.segment_seconds,
            part_seconds=self._streaming.part_ms / 1000,
            work_dir=self._work_dir / f"session-{session_id}",
            events=self._on_event,
            recording_quality=self._streaming.recording_quality,
        )
        live = _LiveSession(session_id, course_id, output, queue)
        self._sessions[session_id] = live
        return live

    async def open(self, session_id: int, course_id: int, stage: Stage = "live") -> None:
        """The session's media, taking up what an earlier process left of it."""
        live = self._sessions.get(session_id)
        if live is not None:
            await live.opened.wait()
            return
        # Registered first: a pending-uploads pass draining this spool sees the session is
        # back and hands the spool over, and a second caller waits for this one.
        live = self._new_session(session_id, course_id)
        try:
            await live.queue.start()
            await live.output.resume(self._storage, live.queue.queued_keys())
            await asyncio.to_thread(write_state, self._work_dir,
                                    SessionMediaState(session_id, course_id, stage))
        except Exception:
            log.exception("session %d: could not take up its earlier media", session_id)
        finally:
            live.opened.set()

    async def unfinished(self) -> list[SessionMediaState]:
        """The sessions an earlier process left live or finalising, from their stage files."""
        return await asyncio.to_thread(read_states, self._work_dir)

    async def finalised(self, session_id: int) -> bool:
        """Whether the session's recording was made (its work folder is gone)."""
        folder = self._work_dir / f"session-{session_id}"
        return not await asyncio.to_thread(folder.exists)

    def live_output(self, session_id: int) -> SessionOutput | None:
        """The session's output while its media is open on this node: the live edge that
        HLS delivery serves from memory."""
        live = self._sessions.get(session_id)
        return live.output if live is not None else None

    async def recording_stored(self, session_id: int) -> bool:
        return await self._storage.size(f"recordings/{session_id}/recording.mp4") is not None

    # ------------------------------------------------------------------ publishers

    def sink(self, course_id: int, session_id: int) -> TranscodeSink:
        """The sink of a publish that just went live in `session_id` (`open` opened the
        session's media)."""
        live = self._sessions.get(session_id)
        if live is None:
            # Not opened: nothing earlier to take up, start afresh.
            live = self._new_session(session_id, course_id)
            live.opened.set()
            self._spawn(live.queue.start())
        token = secrets.token_hex(16)
        worker = TranscodeWorker(
            token,
            settings=self._streaming,
            base_url=self._receiver.register(token, live.output),
            events=self._on_event,
            ffmpeg=self._ffmpeg,
        )
        live.workers[token] = worker
        self._by_token[token] = live

        async def publisher_gone() -> None:
            task = asyncio.create_task(self._finish_worker(live, token, worker))
            live.finishing.add(task)
            task.add_done_callback(live.finishing.discard)
            if self._metrics is not None:
                self._metrics.publisher_stopped()

        sink = TranscodeSink(worker, on_bytes=self._counter(course_id), on_close=publisher_gone)
        live.sink = sink
        if self._metrics is not None:
            self._metrics.publisher_started()
        return sink

    def _counter(self, course_id: int) -> Callable[[int], None]:
        metrics = self._metrics
        if metrics is None:
            return lambda size: None
        return metrics.ingest_counter(course_id)

    async def _finish_worker(self, live: _LiveSession, token: str, worker: TranscodeWorker) -> None:
        try:
            await worker.finish(timeout=_FINISH_TIMEOUT)
        except Exception:
            log.exception("session %d: the transcode worker did not finish cleanly",
                          live.session_id)
            await worker.kill()

    def _on_event(self, event: Event) -> None:
        if self._metrics is not None:
            self._metrics.on_event(event)
        if isinstance(event, RunStarted):
            live = self._by_token.get(event.stream)
            if live is not None:
                live.output.start_epoch(f"{event.stream}/{event.run}", event.renditions,
                                        recording=event.recording)
        elif isinstance(event, WorkerFailed):
            live = self._by_token.get(event.stream)
            where = f"session {live.session_id}" if live is not None else "a session"
            log.error("%s: transcoding stopped after repeated failures: %s", where, event.reason)
        elif isinstance(event, SpoolRefused):
            for live in self._sessions.values():
                if event.key.split("/")[1:2] == [str(live.session_id)] and not live.refusing:
                    live.refusing = True
                    log.error("session %d: the upload spool is %s; its media is being "
                              "refused and lost until it has room", live.session_id,
                              event.reason)

    # ------------------------------------------------------------------ ending

    async def finalise(self, session_id: int) -> str | None:
        """Make the session's recording; its storage key, or None when none was made."""
        live = self._sessions.get(session_id)
        if live is None:
            return None
        await live.opened.wait()
        try:
            # Before anything is made: a stop cut short resumes this after the restart.
            await asyncio.to_thread(write_state, self._work_dir, SessionMediaState(
                live.session_id, live.course_id, "finalising"))
        except OSError:
            log.exception("session %d: cannot note that it is finalising", live.session_id)
        if live.sink is not None and not live.sink.closed:
            await live.sink.close()  # the current publisher's worker finishes too
        if live.finishing:
            await asyncio.gather(*live.finishing, return_exceptions=True)
        key: str | None = None
        try:
            key = await live.output.finalize(self._storage, flush_timeout=_FLUSH_TIMEOUT,
                                             ffmpeg=self._ffmpeg)
        except Exception:
            log.exception("session %d: finalising the recording failed", live.session_id)
        for token in live.workers:
            self._receiver.unregister(token)
            self._by_token.pop(token, None)
        if not await live.queue.flush(_FLUSH_TIMEOUT):
            log.error("session %d: uploads still pending after %.0f s; they stay spooled",
                      live.session_id, _FLUSH_TIMEOUT)
        await live.queue.close(timeout=1.0)
        self._sessions.pop(live.session_id, None)
        return key

    async def forget(self, session_id: int) -> None:
        """The session is over and the control plane knows: drop its stage file."""
        await asyncio.to_thread(remove_state, self._work_dir, session_id)

    async def let_go(self, session_id: int) -> None:
        """Another node carries the session now: stop its workers, send what is queued,
        and drop its output and stage file without making a recording."""
        live = self._sessions.get(session_id)
        if live is not None:
            await live.opened.wait()
            if live.sink is not None and not live.sink.closed:
                await live.sink.close()
            if live.finishing:
                await asyncio.gather(*live.finishing, return_exceptions=True)
            await live.output.let_go()
            for token in live.workers:
                self._receiver.unregister(token)
                self._by_token.pop(token, None)
            if not await live.queue.flush(_FLUSH_TIMEOUT):
                log.error("session %d: uploads still pending after %.0f s; they stay spooled",
                          session_id, _FLUSH_TIMEOUT)
            await live.queue.close(timeout=1.0)
            self._sessions.pop(session_id, None)
        await asyncio.to_thread(remove_state, self._work_dir, session_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ status

    def active_sessions(self) -> set[int]:
        """The sessions whose media this node is carrying or finalising now."""
        return set(self._sessions)

    def details(self, session_id: int) -> dict[str, Any] | None:
        """What live-status shows of the session's stream: input and renditions."""
        live = self._sessions.get(session_id)
        if live is None:
            return None
        sink = live.sink
        worker = sink.worker if sink is not None else None
        source = worker.source if worker is not None else None
        return {
            "publisher_connected": sink is not None and not sink.closed,
            "viewers": self._viewers(live.session_id),
            "input": {
                "bitrate_kbps": sink.bitrate_kbps if sink is not None else 0,
                "video_codec": source.video_codec if source else None,
                "audio_codec": source.audio_codec if source else None,
                "width": source.width if source else None,
                "height": source.height if source else None,
                "fps": source.fps if source else None,
            },
            "renditions": [
                {"name": r.name, "label": r.label, "width": r.width, "height": r.height,
                 "bandwidth": r.bandwidth, "codecs": r.codecs}
                for r in (worker.renditions if worker is not None else [])
            ],
            "worker": {
                "run": worker.run if worker is not None else 0,
                "restarts": worker.restarts if worker is not None else 0,
                "failed": worker.failed if worker is not None else False,
                "dropped_bytes": worker.dropped_bytes if worker is not None else 0,
            },
        }

