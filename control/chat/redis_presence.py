"""Chat presence shared by every control process through Redis.

One sorted set per session (KEY), one member per (process, user): "origin:user_id:username",
scored with the time it stops counting. Each process rewrites its own members when
someone joins or leaves and again every REFRESH_SECONDS, each good for TTL_SECONDS; so
the users of a process that died fall out within TTL_SECONDS, and a session nobody
refreshes loses its key altogether. Readers drop expired members and take the union.
Scores are wall-clock times: the processes' clocks are assumed to agree to well within
TTL_SECONDS.

While Redis is away, a process answers with its own share, marked incomplete; its
writes resume when Redis is back (a full rewrite, nothing to replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from control.background_task import BackgroundTask
from control.chat.hub import ChatHub
from control.chat.presence import Online
from control.redis_pubsub import REDIS_DOWN, RedisPubSub

log = logging.getLogger(__name__)

KEY = "academia:presence:session:{}"
REFRESH_SECONDS = 5.0
TTL_SECONDS = 15.0


def _key(session_id: int) -> str:
    return KEY.format(session_id)


class RedisPresence:
    def __init__(self, link: RedisPubSub, hub: ChatHub) -> None:
        self._link = link
        self._hub = hub
        self._wake = asyncio.Event()
        # What this process last wrote, per session: members to remove once they leave.
        self._written: dict[int, set[str]] = {}
        self._task = BackgroundTask(self._keep_written)
        hub.watch(self._wake.set)
        link.on_state(lambda up: self._wake.set() if up else None)

    def _member(self, user_id: int, username: str) -> str:
        return f"{self._link.origin}:{user_id}:{username}"

    async def online(self, session_id: int) -> Online:
        here = self._hub.present().get(session_id, {})
        now = time.time()
        key = _key(session_id)
        try:
            async with self._link.redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf")
                _, members = await pipe.execute()
        except REDIS_DOWN:
            return Online(here, complete=False)
        users = dict(here)  # this process's own are current even before the next write
        for raw in members:
            _origin, user_id, username = raw.decode().split(":", 2)
            users.setdefault(int(user_id), username)
        return Online(users)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()
        # A clean shutdown takes its users out at once rather than after TTL_SECONDS.
        with contextlib.suppress(*REDIS_DOWN):
            async with self._link.redis.pipeline(transaction=False) as pipe:
                for session_id, members in self._written.items():
                    if members:
                        pipe.zrem(_key(session_id), *members)
                await pipe.execute()
        self._written.clear()

    async def _keep_written(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
            except REDIS_DOWN as exc:
                if not failing:
                    log.warning("chat presence: Redis unreachable (%s); others see this"
                                " process's users again once it is back", exc)
                failing = True
            else:
                failing = False

    async def _write(self) -> None:
        present = {
            session_id: {self._member(uid, name) for uid, name in users.items()}
            for session_id, users in self._hub.present().items()
        }
        expires = time.time() + TTL_SECONDS
        async with self._link.redis.pipeline(transaction=False) as pipe:
            for session_id, members in present.items():
                key = _key(session_id)
                gone = self._written.get(session_id, set()) - members
                if gone:
                    pipe.zrem(key, *gone)
                if members:
                    pipe.zadd(key, dict.fromkeys(members, expires))
                    pipe.expire(key, int(TTL_SECONDS) + 1)
            for session_id in self._written.keys() - present.keys():
                if self._written[session_id]:
                    pipe.zrem(_key(session_id), *self._written[session_id])
            await pipe.execute()
        self._written = {sid: members for sid, members in present.items() if members}
