"""The control plane's job that ends the classes no media node came back for.

Every few seconds a control process looks for orphaned sessions (control/nodes/orphans.py:
their nodes dead, none taking them up within the reconnect grace period), ends each, and
asks an alive media node to finalise its recording from storage (NodeCalls); that node
says `recording_ready` when done. Any number of control processes run it: the end is
re-checked under the course's lock, so only the process that ended a session asks for
its recording. A recording no node could be asked for yet is asked for again at the next
rounds, by this process, while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from config.settings import Settings
from control.background_task import BackgroundTask
from control.db.database import Database
from control.models.base import utcnow
from control.nodes.orphans import Orphan, end_orphan, orphaned_sessions

__all__ = ["OrphanSweep", "RecordingFinaliser"]

log = logging.getLogger(__name__)


class RecordingFinaliser(Protocol):
    """control/nodes/node_calls.py's NodeCalls."""

    async def finalise_recording(self, course_id: int, session_id: int) -> str | None: ...


class OrphanSweep:
    """`interval` seconds between rounds (by default the heartbeat's); `clock` for tests."""

    def __init__(self, settings: Settings, database: Database, nodes: RecordingFinaliser, *,
                 interval: float | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._database = database
        self._nodes = nodes
        self._dead_after = timedelta(seconds=settings.cluster.node_dead_seconds)
        self._grace = timedelta(seconds=settings.streaming.reconnect_grace_seconds)
        self._present = settings.courses.attendance_present_percent
        self._interval = (interval if interval is not None
                          else float(settings.cluster.node_heartbeat_seconds))
        self._clock = clock
        self._unfinalised: dict[int, Orphan] = {}  # ended here, no node took the recording
        self._task = BackgroundTask(self._forever)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def sweep(self) -> list[int]:
        """One round: the sessions it ended."""
        now = self._clock()
        async with self._database.transaction(write=False) as db:
            orphans = await orphaned_sessions(db, now=now, dead_after=self._dead_after,
                                              grace=self._grace)
        ended = []
        for orphan in orphans:
            async with self._database.transaction(write=True) as db:
                if not await end_orphan(db, orphan, now=self._clock(),
                                        dead_after=self._dead_after, grace=self._grace,
                                        present_percent=self._present):
                    continue
            log.info("course %d: session %d ended: its media node died and no node took it "
                     "up within %.0f s", orphan.course_id, orphan.session_id,
                     self._grace.total_seconds())
            ended.append(orphan.session_id)
            self._unfinalised[orphan.session_id] = orphan
        for orphan in list(self._unfinalised.values()):
            node = await self._nodes.finalise_recording(orphan.course_id, orphan.session_id)
            if node is None:
                log.warning("session %d: no media node could be asked to finalise its "
                            "recording; asking again", orphan.session_id)
                continue
            log.info("session %d: node %s finalises its recording", orphan.session_id, node)
            del self._unfinalised[orphan.session_id]
        return ended

    async def _forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                # The database may be away: the next round tries again.
                log.exception("orphaned class sweep failed")
            await asyncio.sleep(self._interval)
