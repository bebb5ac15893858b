"""Media an earlier class left on this disk because storage was down: sent when it is back.

A session's upload queue keeps what storage refused in its spool folder, and a recording
MP4 that could not be stored is moved to `work/unsent/`. Nothing else would ever look at
them once the session is over, or after a restart. `PendingUploads` does, on start and
then every `interval` seconds: it drains each spool left by a session this node is not
carrying (taking the spool's lock, and handing it over as soon as the session comes back
live here, so one spool is only ever sent by one queue), then stores each unsent MP4 (only
once its session's spool is empty, so the recording's playlists are there first) and tells
the control plane the recording is ready (asked again at the next round, should the
control plane not answer: the MP4 is already gone from here by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

from control.background_task import BackgroundTask
from mediaserver.control_port import ControlPort
from transcode.events import EventSink
from transcode.media_types import MP4_TYPE
from transcode.storage.backend import Storage, StorageError
from transcode.storage.spool_budget import SpoolBudget
from transcode.storage.upload_queue import SpoolBusy, UploadQueue

__all__ = ["PendingUploads"]

log = logging.getLogger(__name__)

# How often a drain looks whether its session came back live on this node.
_HANDOVER_CHECK_S = 0.5

_SESSION = re.compile(r"session-(\d+)(?:\.mp4)?$")


def _session_id(path: Path) -> int | None:
    found = _SESSION.fullmatch(path.name)
    return int(found.group(1)) if found else None


class PendingUploads:
    """See the module docstring. `active()` names the sessions live on this node: their
    spools belong to their own running queues."""

    def __init__(
        self,
        storage: Storage,
        control: ControlPort,
        *,
        spool_dir: Path,
        unsent_dir: Path,
        active: Callable[[], set[int]],
        events: EventSink | None = None,
        interval: float = 60.0,
        drain_seconds: float = 30.0,
        budget: SpoolBudget | None = None,
    ) -> None:
        self._storage = storage
        self._control = control
        self._spool_dir = spool_dir
        self._unsent_dir = unsent_dir
        self._active = active
        self._events = events
        self._interval = interval
        # How long one round waits for a spool to drain before moving on (storage down).
        self._drain_seconds = drain_seconds
        self._budget = budget
        self._task = BackgroundTask(self._forever)
        # Recordings stored whose readiness the control plane has not taken yet.
        self._unconfirmed: set[int] = set()

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def _forever(self) -> None:
        while True:
            try:
                await self.retry_once()
            except Exception:
                log.exception("sending media left from earlier classes failed; retrying later")
            await asyncio.sleep(self._interval)

    async def retry_once(self) -> None:
        """One round: drain the spools, then store the unsent MP4s whose spools are empty;
        first, tell the control plane again of recordings it has not taken yet."""
        for unconfirmed in sorted(self._unconfirmed):
            await self._confirm(unconfirmed)
        undrained: set[int] = set()
        for folder in await asyncio.to_thread(self._leftover_spools):
            session_id = _session_id(folder)
            if session_id is None or session_id in self._active():
                continue
            if not await self._drain(folder, session_id):
                undrained.add(session_id)
        for mp4 in await asyncio.to_thread(self._unsent):
            session_id = _session_id(mp4)
            if session_id is None or session_id in undrained or session_id in self._active():
                continue
            await self._send_mp4(session_id, mp4)

    def _leftover_spools(self) -> list[Path]:
        if not self._spool_dir.is_dir():
            return []
        return sorted(p for p in self._spool_dir.iterdir() if p.is_dir() and any(p.iterdir()))

    def _unsent(self) -> list[Path]:
        if not self._unsent_dir.is_dir():
            return []
        return sorted(self._unsent_dir.glob("session-*.mp4"))

    async def _drain(self, folder: Path, session_id: int) -> bool:
        queue = UploadQueue(self._storage, folder, events=self._events, budget=self._budget)
        try:
            await queue.start(wait=False)
        except SpoolBusy:
            return False  # its session's own queue (or another drain) has it
        count = queue.pending
        done = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_seconds
        # Checked now and then: a session that comes back live (its encoder reconnected
        # after a restart) gets its spool handed over at once, the rest sent by its queue.
        while not done and session_id not in self._active():
            left = deadline - loop.time()
            if left <= 0:
                break
            done = await queue.flush(min(left, _HANDOVER_CHECK_S))
        done = await queue.close(timeout=0 if not done else None)
        if done:
            log.info("%s: %d upload(s) left by an earlier run stored", folder.name, count)
            if session_id not in self._active():  # else its live queue may be writing there
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(_remove_empty, folder)
        return done

    async def _send_mp4(self, session_id: int, mp4: Path) -> None:
        key = f"recordings/{session_id}/recording.mp4"
        try:
            await self._storage.put_file(key, str(mp4), MP4_TYPE)
        except StorageError as exc:
            log.warning("session %d: recording still not stored (%s); retrying later",
                        session_id, exc)
            return
        await asyncio.to_thread(mp4.unlink)
        log.info("session %d: recording stored after all", session_id)
        await self._confirm(session_id)

    async def _confirm(self, session_id: int) -> None:
        try:
            await self._control.recording_ready(session_id)
        except Exception as exc:
            if session_id not in self._unconfirmed:
                log.warning("session %d: the control plane did not take that its recording"
                            " is ready (%s); retrying later", session_id, exc)
            self._unconfirmed.add(session_id)
            return
        self._unconfirmed.discard(session_id)
        log.info("session %d: recording marked ready", session_id)


def _remove_empty(folder: Path) -> None:
    # The queue may leave nothing but empty bookkeeping behind: only empty folders go.
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir():
            path.rmdir()
    folder.rmdir()
