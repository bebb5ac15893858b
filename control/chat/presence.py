"""Who is in a session's chat now: signed-in users with an open chat socket.

The view is the union over every control process: in one process (no Redis) the hub's
own sockets (`LocalPresence`); with several, Redis holds each process's share
(control/chat/redis_presence.py). Anonymous readers are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from control.chat.hub import ChatHub


@dataclass(frozen=True)
class Online:
    users: dict[int, str]  # user id -> username
    # False when only this process's share could be read (Redis away).
    complete: bool = True


class Presence(Protocol):
    async def online(self, session_id: int) -> Online: ...


class LocalPresence:
    def __init__(self, hub: ChatHub) -> None:
        self._hub = hub

    async def online(self, session_id: int) -> Online:
        return Online(self._hub.present().get(session_id, {}))


CHAT_PRESENCE = web.AppKey("academia_chat_presence", Presence)
