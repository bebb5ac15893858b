"""Chat between control processes: what one hub sends, the others deliver, through one
Redis channel (CHANNEL).

Every broadcast and every word to a user (messages, deletions, bans: whatever the hub
sends) is queued here and published by one task, in order. The poster never waits: the
queue is bounded, and past MAX_PENDING an event is dropped and counted. Each process
skips its own events (control/redis_pubsub.py), having delivered them locally already,
so a socket gets each frame once.

While Redis is away, delivery within each process goes on and events for the others
are dropped (counted, not retried: a late burst of old messages would arrive out of
order). Nothing is lost from the database, where a message is stored before it is
sent; a reader on another process finds it in the history when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from control.background_task import BackgroundTask
from control.chat.hub import ChatHub
from control.redis_pubsub import RedisPubSub

log = logging.getLogger(__name__)

CHANNEL = "academia:chat"
MAX_PENDING = 10_000


class RedisChatRelay:
    def __init__(self, link: RedisPubSub, hub: ChatHub) -> None:
        self._link = link
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_PENDING)
        self._task = BackgroundTask(self._publish_all)
        self.dropped = 0  # events the other processes never got
        self._dropping = False
        link.subscribe(CHANNEL, hub.deliver)
        hub.relay = self

    def send(self, event: dict[str, Any]) -> None:
        if not self._link.up:
            # Redis is away: trying would only cost time; the link says when it is back.
            self._drop("Redis is away")
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop("the relay's queue is full")

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if not self._dropping:
            self._dropping = True
            log.warning("chat events stay in this process (%s); %d dropped so far",
                        why, self.dropped)

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def _publish_all(self) -> None:
        while True:
            event = await self._queue.get()
            if await self._link.publish(CHANNEL, event):
                self._dropping = False
                continue
            self._drop("Redis did not take it")
            # What waits behind it would fail the same way, each after a timeout.
            while not self._queue.empty():
                self._queue.get_nowait()
                self.dropped += 1
