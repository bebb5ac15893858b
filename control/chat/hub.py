"""The in-process chat hub: the open sockets of every session, broadcast to them, and
the per-user rate-limit buckets. One hub per application (one `academia serve`).

Sending never holds a database transaction: callers commit first, then broadcast.
Broadcasting only queues frames on each socket (control/chat/connection.py): posting and
moderation never wait on any reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import WSCloseCode, web

from config.settings import CourseSettings
from control.chat.connection import ChatConnection, outgoing
from control.chat.rate_limit import TokenBucket
from control.models.base import utcnow


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

    def session_ids(self) -> list[int]:
        return list(self._rooms)

    def broadcast(self, session_id: int, frame: dict[str, Any]) -> None:
        item = outgoing(frame)
        for connection in self.connections(session_id):
            connection.send(item)

    def tell_user(self, course_id: int, user_id: int, frame: dict[str, Any]) -> None:
        """Every open socket of one user in one course's chats."""
        item = outgoing(frame)
        for room in list(self._rooms.values()):
            for connection in list(room):
                if connection.course_id == course_id and connection.user_id == user_id:
                    connection.send(item)

    async def close_all(self, _app: web.Application | None = None) -> None:
        """On shutdown: close every socket so their handlers end."""
        everyone = [c for room in list(self._rooms.values()) for c in room]
        for connection in everyone:
            connection.drop(int(WSCloseCode.GOING_AWAY), "server shutdown")
        await asyncio.gather(*(c.closed() for c in everyone), return_exceptions=True)


CHAT_HUB = web.AppKey("academia_chat_hub", ChatHub)
