"""The chat hub: the open sockets of every session in this process, broadcast to them,
and the per-user rate limit. One hub per application (one `academia serve`).

Sending never holds a database transaction: callers commit first, then broadcast.
Broadcasting only queues frames on each socket (control/chat/connection.py): posting and
moderation never wait on any reader. With several control processes (Redis), every
broadcast and every word to a user also goes to the `relay` (control/chat/redis_relay.py),
which hands it to the other processes; what they relay arrives through `deliver`, which
reaches this process's sockets only. So each socket gets each frame once, from the
process that holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from config.settings import CourseSettings
from control.accounts.rate_limit_store import InProcessStore, RateLimitStore
from control.chat.connection import ChatConnection, Outgoing, outgoing
from control.models.base import utcnow


class ChatRelay(Protocol):
    def send(self, event: dict[str, Any]) -> None:
        """Hand an event to the other processes; never waits."""
        ...


class ChatHub:
    def __init__(
        self, settings: CourseSettings, clock: Callable[[], datetime] = utcnow,
        limits: RateLimitStore | None = None,
    ) -> None:
        self.settings = settings
        # Replaceable so tests can move time (mutes, slow mode, the rate limit).
        self.clock = clock
        # The per-user message buckets: the sign-in limits' store, so that with Redis a
        # user posting through several processes spends from one bucket.
        self.limits: RateLimitStore = limits or InProcessStore()
        self.relay: ChatRelay | None = None
        self._rooms: dict[int, set[ChatConnection]] = {}
        # Told whenever someone joins or leaves (presence keeps its view current).
        self._watchers: list[Callable[[], None]] = []

    def watch(self, watcher: Callable[[], None]) -> None:
        self._watchers.append(watcher)

    def _changed(self) -> None:
        for watcher in self._watchers:
            watcher()

    def join(self, connection: ChatConnection) -> None:
        self._rooms.setdefault(connection.session_id, set()).add(connection)
        self._changed()

    def leave(self, connection: ChatConnection) -> None:
        room = self._rooms.get(connection.session_id)
        if room is None:
            return
        room.discard(connection)
        if not room:
            del self._rooms[connection.session_id]
        self._changed()

    def connections(self, session_id: int) -> list[ChatConnection]:
        return list(self._rooms.get(session_id, ()))

    def present(self) -> dict[int, dict[int, str]]:
        """Who is here, in this process: {session id: {user id: username}} (signed in)."""
        return {
            session_id: {c.user_id: c.username for c in room
                         if c.user_id is not None and c.dropped is None}
            for session_id, room in self._rooms.items()
        }

    async def take_token(self, user_id: int) -> bool:
        """The per-user rate limit; the same bucket across all of the user's sockets
        (and, with Redis, processes): a burst, then one message per refill period."""
        burst, period = self.settings.chat_rate_burst, self.settings.chat_rate_refill_seconds
        if period <= 0:  # nothing to wait for: no limit (a burst of 0 still refuses all)
            return True
        wait = await self.limits.take(f"chat:user:{user_id}", burst, period,
                                      self.clock().timestamp())
        return wait <= 0

    def session_ids(self) -> list[int]:
        return list(self._rooms)

    def broadcast(self, session_id: int, frame: dict[str, Any]) -> None:
        item = outgoing(frame)
        self._broadcast_here(session_id, item)
        if self.relay is not None:
            self.relay.send({"kind": "broadcast", "session_id": session_id,
                             "message_id": item.message_id, "text": item.text})

    def tell_user(self, course_id: int, user_id: int, frame: dict[str, Any]) -> None:
        """Every open socket of one user in one course's chats."""
        item = outgoing(frame)
        self._tell_here(course_id, user_id, item)
        if self.relay is not None:
            self.relay.send({"kind": "tell_user", "course_id": course_id, "user_id": user_id,
                             "message_id": item.message_id, "text": item.text})

    def deliver(self, event: dict[str, Any]) -> None:
        """An event another process relayed: to this process's sockets only."""
        item = Outgoing(event["message_id"], event["text"])
        if event["kind"] == "broadcast":
            self._broadcast_here(int(event["session_id"]), item)
        elif event["kind"] == "tell_user":
            self._tell_here(int(event["course_id"]), int(event["user_id"]), item)

    def _broadcast_here(self, session_id: int, item: Outgoing) -> None:
        for connection in self.connections(session_id):
            connection.send(item)

    def _tell_here(self, course_id: int, user_id: int, item: Outgoing) -> None:
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
