"""The in-process chat hub: the open sockets of every session, broadcast to them, and
the per-user rate-limit buckets. One hub per application (one `academia serve`).

Sending never holds a database transaction: callers commit first, then broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import WSCloseCode, web

from config.settings import CourseSettings
from control.api.responses import dumps
from control.chat.rate_limit import TokenBucket
from control.models.base import utcnow


@dataclass(eq=False)
class ChatConnection:
    socket: web.WebSocketResponse
    session_id: int
    course_id: int
    user_id: int | None  # None: an anonymous reader
    username: str
    # Frames broadcast while the history is still being sent wait here, so a new
    # joiner sees every message once and in order.
    pending: list[dict[str, Any]] | None = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        if self.pending is not None:
            self.pending.append(frame)
            return
        await self._write(frame)

    async def open(self, history: list[dict[str, Any]]) -> None:
        """Send the history, then what was broadcast meanwhile (minus repeats), then live."""
        for frame in history:
            await self._write(frame)
        seen = max((f["id"] for f in history), default=0)
        assert self.pending is not None
        while self.pending:
            frame = self.pending.pop(0)
            if frame["type"] == "message" and frame["id"] <= seen:
                continue
            await self._write(frame)
        # No await between the emptiness check and this: nothing can slip in between.
        self.pending = None

    async def _write(self, frame: dict[str, Any]) -> None:
        if self.socket.closed:
            return
        # A peer that vanished mid-send is dropped by its own handler; not our concern.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.socket.send_str(dumps(frame))


class ChatHub:
    def __init__(
        self, settings: CourseSettings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        # Replaceable so tests can move time (mutes, slow mode, the rate limit).
        self.clock = clock
        self._rooms: dict[int, set[ChatConnection]] = {}
        self._buckets: dict[int, TokenBucket] = {}

    def join(self, connection: ChatConnection) -> None:
        self._rooms.setdefault(connection.session_id, set()).add(connection)

    def leave(self, connection: ChatConnection) -> None:
        room = self._rooms.get(connection.session_id)
        if room is None:
            return
        room.discard(connection)
        if not room:
            del self._rooms[connection.session_id]
        self._forget_idle_bucket(connection.user_id)

    def connections(self, session_id: int) -> list[ChatConnection]:
        return list(self._rooms.get(session_id, ()))

    def take_token(self, user_id: int) -> bool:
        """The per-user rate limit; the same bucket across all of the user's sockets."""
        now = self.clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(
                self.settings.chat_rate_burst, self.settings.chat_rate_refill_seconds, now
            )
        return bucket.take(now)

    def _forget_idle_bucket(self, user_id: int | None) -> None:
        # A full bucket holds no state worth keeping; a partly used one survives a
        # reconnect, so reconnecting does not reset the limit.
        if user_id is None:
            return
        bucket = self._buckets.get(user_id)
        if bucket is not None and bucket.full(self.clock()):
            del self._buckets[user_id]

    async def broadcast(self, session_id: int, frame: dict[str, Any]) -> None:
        await asyncio.gather(*(c.send(frame) for c in self.connections(session_id)))

    async def tell_user(self, course_id: int, user_id: int, frame: dict[str, Any]) -> None:
        """Every open socket of one user in one course's chats."""
        targets = [
            c
            for room in list(self._rooms.values())
            for c in room
            if c.course_id == course_id and c.user_id == user_id
        ]
        await asyncio.gather(*(c.send(frame) for c in targets))

    async def close_all(self, _app: web.Application | None = None) -> None:
        """On shutdown: close every socket so their handlers end."""
        everyone = [c for room in list(self._rooms.values()) for c in room]
        await asyncio.gather(
            *(c.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
              for c in everyone),
            return_exceptions=True,
        )


CHAT_HUB = web.AppKey("academia_chat_hub", ChatHub)
