"""The control plane telling media nodes about their classes: a `LiveObserver` over HTTP.

A control process of a cluster carries no media. When its API ends a class or revokes
stream keys, the node carrying the class must stop it; live-status shows the stream's
details from that node. The carrier comes from the registry (control/nodes/registry.py);
a session no node has reported yet (it went live since the last heartbeat) is told to
every alive node, and a node that does not carry it ignores it. Calls carry the node
secret and a short timeout: a dead or slow node is logged, never an API error (the class
has ended all the same; its encoder is refused at its next reconnect).

Beyond the observer: `finalise_recording` asks one alive node to make the recording of a
class whose node died (control/nodes/orphan_sweep.py), from what storage holds.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import aiohttp

from config.settings import Settings
from control.db.database import Database
from control.models.base import utcnow
from control.nodes.node_secret import bearer_header
from control.nodes.registry import NodeAddress, alive_nodes, carrier_of
from control.sessions.states import live_session

__all__ = ["NODE_PREFIX", "NodeCalls"]

log = logging.getLogger(__name__)

# The media node's internal routes (mediaserver/node_api.py).
NODE_PREFIX = "/internal/node"


class NodeCalls:
    """Implements control.sessions.live_observer.LiveObserver for a control process.
    `timeout` bounds each call to a node, in seconds. Call `close()` when done."""

    def __init__(self, settings: Settings, database: Database, *, timeout: float = 2.0) -> None:
        self._database = database
        self._headers = bearer_header(settings.cluster.node_secret)
        self._dead_after = timedelta(seconds=settings.cluster.node_dead_seconds)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def session_ended(self, course_id: int, session_id: int) -> None:
        await self._tell(await self._nodes_for(session_id), "session-ended",
                         {"course_id": course_id, "session_id": session_id})

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        session_id = await self._live_session(course_id)
        await self._tell(await self._nodes_for(session_id), "keys-revoked",
                         {"course_id": course_id, "key_ids": sorted(key_ids)})

    async def details(self, course_id: int) -> dict[str, Any] | None:
        # Only the known carrier: live-status is polled by every viewer, never broadcast.
        session_id = await self._live_session(course_id)
        if session_id is None:
            return None
        async with self._database.transaction(write=False) as db:
            node = await carrier_of(db, session_id, now=utcnow(), dead_after=self._dead_after)
        if node is None:
            return None
        answer = await self._post(node, "stream-details", {"course_id": course_id})
        stream = answer.get("stream") if isinstance(answer, dict) else None
        return stream if isinstance(stream, dict) else None

    async def finalise_recording(self, course_id: int, session_id: int) -> str | None:
        """Ask an alive node to finalise the session's recording from storage (it answers
        at once and tells the control plane `recording_ready` when done); the name of the
        node that took it, or None when none could be reached."""
        async with self._database.transaction(write=False) as db:
            nodes = await alive_nodes(db, now=utcnow(), dead_after=self._dead_after)
        for node in nodes:
            if await self._post(node, "finalise-recording",
                                {"course_id": course_id, "session_id": session_id},
                                accepted=True):
                return node.name
        return None

    async def _live_session(self, course_id: int) -> int | None:
        async with self._database.transaction(write=False) as db:
            session = await live_session(db, course_id)
        return session.id if session is not None else None

    async def _nodes_for(self, session_id: int | None) -> list[NodeAddress]:
        """The session's carrier if one is known, else every alive node."""
        now = utcnow()
        async with self._database.transaction(write=False) as db:
            if session_id is not None:
                node = await carrier_of(db, session_id, now=now, dead_after=self._dead_after)
                if node is not None:
                    return [node]
            return await alive_nodes(db, now=now, dead_after=self._dead_after)

    async def _tell(self, nodes: list[NodeAddress], route: str, body: dict[str, Any]) -> None:
        await asyncio.gather(*(self._post(node, route, body) for node in nodes))

    async def _post(self, node: NodeAddress, route: str, body: dict[str, Any], *,
                    accepted: bool = False) -> Any:
        """The node's JSON answer (None for none), or None when it could not be reached:
        logged, never raised. `accepted`: only whether the node took the call (2xx)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        url = node.url.rstrip("/") + f"{NODE_PREFIX}/{route}"
        try:
            async with self._http.post(url, json=body, headers=self._headers) as response:
                if response.status >= 400:
                    log.warning("media node %s answered %s to %s", node.name,
                                response.status, route)
                    return False if accepted else None
                if accepted:
                    return True
                if response.status == 204:
                    return None
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("media node %s (%s) not reached for %s: %s", node.name, node.url,
                        route, type(exc).__name__)
            return False if accepted else None
