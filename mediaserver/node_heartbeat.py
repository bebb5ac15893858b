"""The media node telling the control plane, every few seconds, that it is alive.

Each beat names the node, the address the control plane and the edge reach it at, and the
sessions whose media it carries now (live, waiting for its encoder, or finalising): the
control plane's registry (control/nodes/registry.py) routes playback and end-live calls
with it, and takes a node silent for `node_dead_seconds` for dead. A failed beat is
logged (once, until beats get through again) and tried again a second later; it never
stops the node: classes keep streaming while the control plane is away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Protocol

from config.settings import Settings
from control.background_task import BackgroundTask

__all__ = ["Heartbeats", "NodeHeartbeat", "node_identity"]

log = logging.getLogger(__name__)

# After a failed beat, the next one comes this soon (or at the interval, if shorter).
_RETRY_AFTER_FAILURE_S = 1.0


class Heartbeats(Protocol):
    """Where beats go: mediaserver/control_http.py's HttpControl."""

    async def heartbeat(self, name: str, url: str, session_ids: Iterable[int]) -> None: ...


def node_identity(settings: Settings, http_port: int | None = None) -> tuple[str, str]:
    """This node's name and URL: `cluster.node_name` / `node_url`, else the host name and
    http://<host name>:<HTTP port> (`http_port` is the port actually bound, when known)."""
    cluster = settings.cluster
    host = socket.gethostname()
    port = http_port if http_port is not None else settings.server.http_port
    return cluster.node_name or host, cluster.node_url or f"http://{host}:{port}"


class NodeHeartbeat:
    """Beats every `interval` seconds from start() until close(); `sessions()` names the
    sessions carried now (SessionMedia.active_sessions)."""

    def __init__(
        self,
        control: Heartbeats,
        *,
        name: str,
        url: str,
        sessions: Callable[[], Iterable[int]],
        interval: float,
    ) -> None:
        self._control = control
        self._name = name
        self._url = url
        self._sessions = sessions
        self._interval = interval
        self._task = BackgroundTask(self._forever)
        self._failing = False

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def beat(self) -> bool:
        """One beat now; whether the control plane took it."""
        try:
            await self._control.heartbeat(self._name, self._url, set(self._sessions()))
        except Exception as exc:
            if not self._failing:
                log.warning("node %s: heartbeat not taken by the control plane (%s); "
                            "retrying", self._name, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("node %s: heartbeats reach the control plane again", self._name)
        self._failing = False
        return True

    async def _forever(self) -> None:
        while True:
            taken = await self.beat()
            await asyncio.sleep(self._interval if taken
                                else min(self._interval, _RETRY_AFTER_FAILURE_S))
