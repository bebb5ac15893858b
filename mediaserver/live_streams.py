"""Every live session's media on this node: its workers, its output, its grace period.

This is where ingest, transcoding, storage and the control plane meet. To the RTMP
server (and later WHIP) it is the `ControlPort`, passing questions to the real one, and
the sink factory. What it adds is the life of a live session's media:

- each publish gets a transcode worker, whose ffmpeg output reaches the session's
  `SessionOutput` through the segment receiver under a random token;
- a publisher that drops leaves the session live for the reconnect grace period; a
  reconnect within it continues the same session and recording (a new epoch, so a
  discontinuity in the playlists);
- when the grace period runs out, the class is ended from the web app, or the server
  shuts down, the session ends: its recording is finalised (VOD playlists, MP4) and the
  control plane is told the recording is ready;
- when the stream key a publisher went live with stops working (revoked, rotated, or
  its holder lost the course), that publisher is disconnected. The class is not ended:
  it waits the reconnect grace period like after a dropped encoder, so the teacher can
  come back with a good key and the session and recording go on.

Nothing of it depends on this process living to the end. Each session's stage is kept on
disk (mediaserver.session_media_state), and `resume_unfinished` at start takes up what an
earlier process left: a session still live waits for its encoder (the grace period), its
output numbering on after every segment already recorded; a finalisation cut short is
done again, to the MP4 and `recording_url`. A session's spool is sent by its own queue
only: the queue locks it, and the pending-uploads pass hands it over.
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

from config.settings import Settings
from mediaserver.control_port import ControlPort, PlaybackDecision, PublishDecision
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
from transcode.segment_receiver import SegmentReceiver
from transcode.session_output import SessionOutput
from transcode.storage.backend import Storage
from transcode.storage.spool_budget import SpoolBudget, default_spool_bytes
from transcode.storage.upload_queue import UploadQueue
from transcode.worker import TranscodeWorker

__all__ = ["LiveStreams"]

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
    grace: asyncio.Task[None] | None = None
    ending: asyncio.Task[None] | None = None
    # Set once the queue owns its spool and the output took up what was recorded before.
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    refusing: bool = False  # the spool refused media (logged once per session)


class LiveStreams:
    """The live sessions of this node; see the module docstring.

    `disconnect(course_id, reason)` closes a course's publisher and
    `publishing_key(course_id)` names the stream key it went live with (both set by
    whoever owns the RTMP server, once it exists).
    """

    def __init__(
        self,
        control: ControlPort,
        settings: Settings,
        *,
        storage: Storage,
        receiver: SegmentReceiver,
        metrics: Metrics | None = None,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self._control = control
        self._settings = settings
        self._streaming = settings.streaming
        self._storage = storage
        self._receiver = receiver
        self._metrics = metrics
        self._ffmpeg = ffmpeg
        self._grace = float(settings.streaming.reconnect_grace_seconds)
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
        self.disconnect: Callable[[int, str], bool] = lambda course_id, reason: False
        self.publishing_key: Callable[[int], int | None] = lambda course_id: None
        # Players watching a live session now (set by whoever serves HLS).
        self.viewers: Callable[[int], int] = lambda session_id: 0

    # ------------------------------------------------------------------ ControlPort

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        return await self._control.authorize_publish(app, key)

    async def stream_started(self, course_id: int) -> int:
        waiting = self._session_of_course(course_id)
        if waiting is not None and waiting.grace is not None:
            waiting.grace.cancel()
            waiting.grace = None
        session_id = await self._control.stream_started(course_id)
        if waiting is not None and waiting.session_id != session_id:
            # The session ended elsewhere (from the web app) while its publisher was away.
            self._end_soon(waiting)
        elif waiting is not None:
            log.info("course %d: publisher back within the grace period: session %d goes on",
                     course_id, session_id)
        await self._open(session_id, course_id)
        return session_id

    async def stream_ended(self, course_id: int) -> None:
        live = self._session_of_course(course_id)
        if live is None or live.ending is not None:
            await self._control.stream_ended(course_id)
            return
        if live.grace is None:
            log.info("course %d: publisher gone; session %d waits %.0f s for it",
                     course_id, live.session_id, self._grace)
            live.grace = asyncio.create_task(self._grace_period(live))

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        return await self._control.authorize_playback(session_id, token)

    async def recording_ready(self, session_id: int) -> None:
        await self._control.recording_ready(session_id)

    # ------------------------------------------------------------------ sinks

    def _new_session(self, session_id: int, course_id: int) -> _LiveSession:
        queue = UploadQueue(self._storage, self._spool_dir / f"session-{session_id}",
                            events=self._on_event, budget=self.spool_budget)
        output = SessionOutput(
            session_id,
            queue,
            window=self._streaming.live_window_segments,
            work_dir=self._work_dir / f"session-{session_id}",
            events=self._on_event,
        )
        live = _LiveSession(session_id, course_id, output, queue)
        self._sessions[session_id] = live
        return live

    async def _open(self, session_id: int, course_id: int, stage: Stage = "live"
                    ) -> _LiveSession:
        """The session's media, taking up what an earlier process left of it."""
        live = self._sessions.get(session_id)
        if live is not None:
            await live.opened.wait()
            return live
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
        return live

    async def resume_unfinished(self) -> None:
        """At start: take up the sessions an earlier process left unfinished (see the
        module docstring). Finalisations run in the background."""
        for state in await asyncio.to_thread(read_states, self._work_dir):
            folder = self._work_dir / f"session-{state.session_id}"
            if state.stage == "finalising" and not await asyncio.to_thread(folder.exists):
                # Finalised, but the control plane may not have heard of it.
                self._spawn(self._confirm_recording(state))
                continue
            live = await self._open(state.session_id, state.course_id, state.stage)
            if state.stage == "finalising":
                log.info("session %d: completing its recording, cut short by the last stop",
                         state.session_id)
                self._end_soon(live)
            else:
                log.info("course %d: session %d was live when the last process stopped; it "
                         "waits %.0f s for its encoder", state.course_id, state.session_id,
                         self._grace)
                live.grace = asyncio.create_task(self._grace_period(live))

    async def _confirm_recording(self, state: SessionMediaState) -> None:
        key = f"recordings/{state.session_id}/recording.mp4"
        try:
            if await self._storage.size(key) is not None:
                await self._control.recording_ready(state.session_id)
        except Exception:
            log.exception("session %d: could not confirm its recording", state.session_id)
            return
        await asyncio.to_thread(remove_state, self._work_dir, state.session_id)

    def sink_factory(self, course_id: int, session_id: int) -> TranscodeSink:
        """The sink of a publish that just went live in `session_id` (`stream_started`
        opened the session's media)."""
        live = self._sessions.get(session_id)
        if live is None:
            # Not through stream_started: nothing earlier to take up, start afresh.
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
                live.output.start_epoch(f"{event.stream}/{event.run}", event.renditions)
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

    def _session_of_course(self, course_id: int) -> _LiveSession | None:
        for live in self._sessions.values():
            if live.course_id == course_id and live.ending is None:
                return live
        return None

    async def _grace_period(self, live: _LiveSession) -> None:
        await asyncio.sleep(self._grace)
        live.grace = None
        log.info("course %d: no publisher for %.0f s: session %d ends", live.course_id,
                 self._grace, live.session_id)
        try:
            await self._control.stream_ended(live.course_id)
        except Exception:
            log.exception("course %d: could not record the end of session %d",
                          live.course_id, live.session_id)
        self._end_soon(live)

    def _end_soon(self, live: _LiveSession) -> asyncio.Task[None]:
        if live.ending is None:
            if live.grace is not None:
                live.grace.cancel()
                live.grace = None
            live.ending = asyncio.create_task(self._finalise(live))
        return live.ending

    async def session_ended(self, course_id: int, session_id: int) -> None:
        """The class was ended from the web app: close its publisher, finalise its media."""
        live = self._sessions.get(session_id)
        self.disconnect(course_id, "the class was ended from the web app")
        if live is not None:
            self._end_soon(live)

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        """Keys of the course stopped working: cut off a publisher live on one of them.
        Its session then waits the grace period (see the module docstring)."""
        key_id = self.publishing_key(course_id)
        if key_id is not None and key_id in key_ids:
            log.info("course %d: the publisher's stream key (id %d) no longer works:"
                     " disconnecting it", course_id, key_id)
            self.disconnect(course_id, "its stream key was revoked")

    async def _finalise(self, live: _LiveSession) -> None:
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
        if key is not None:
            try:
                await self._control.recording_ready(live.session_id)
            except Exception:
                # The state stays: the next start tells the control plane again.
                log.exception("session %d: could not record that its recording is ready",
                              live.session_id)
                return
            log.info("session %d: recording ready (%s)", live.session_id, key)
        await asyncio.to_thread(remove_state, self._work_dir, live.session_id)

    async def close(self) -> None:
        """Shutting down: end every session now (no grace), finalising each recording."""
        endings = []
        for live in list(self._sessions.values()):
            if live.ending is None:
                try:
                    await self._control.stream_ended(live.course_id)
                except Exception:
                    log.exception("course %d: could not record the end of session %d",
                                  live.course_id, live.session_id)
            endings.append(self._end_soon(live))
        if endings:
            await asyncio.gather(*endings, return_exceptions=True)
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

    def details(self, course_id: int) -> dict[str, Any] | None:
        """What live-status shows of the course's stream: input and renditions."""
        live = self._session_of_course(course_id)
        if live is None:
            return None
        sink = live.sink
        worker = sink.worker if sink is not None else None
        source = worker.source if worker is not None else None
        return {
            "publisher_connected": sink is not None and not sink.closed,
            "viewers": self.viewers(live.session_id),
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

