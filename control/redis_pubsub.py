"""This process's publish/subscribe link to Redis, shared by the chat fan-out, the token
revocations and presence (several control processes, `server.redis_url`).

One subscriber connection carries every channel. Whether it is *known to be up* is state
that others act on (the token cache trusts its entries only then), so:
- it counts as up only once Redis has confirmed the subscriptions, and as down at the
  first error, or when a ping sent on it is not answered within PING_TIMEOUT_SECONDS (a
  Redis behind a cut link never closes the connection);
- redis-py's own silent reconnect-and-resubscribe is turned off (no retries): a reconnect
  would hide the gap during which messages were missed. This link reconnects itself,
  with a growing backoff, and says so through `on_state`;
- an outage is logged once when it starts and once when it ends, never per message.

Messages are JSON objects tagged with this process's `origin`; a process never hears its
own (it has already acted on them). Publishing is separate (`publish`): it fails fast
rather than waits, and callers decide what a lost message costs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from control.background_task import BackgroundTask

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
StateListener = Callable[[bool], None]

TIMEOUT_SECONDS = 1.0
PING_EVERY_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 3.0
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 2.0
_PING = b"academia-link"
# Errors that mean "Redis is away", as opposed to a bug here.
REDIS_DOWN = (RedisError, OSError, TimeoutError)


def no_retries() -> Retry:
    """A redis-py retry policy that retries nothing: this code keeps its own backoff."""
    return Retry(NoBackoff(), 0)


class RedisPubSub:
    def __init__(self, url: str, *, origin: str | None = None) -> None:
        self.url = url
        # Names this process in its messages, so it can skip its own.
        self.origin = origin or secrets.token_hex(8)
        self.redis: Redis = Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS,
            retry=no_retries(),
        )
        self._handlers: dict[str, Handler] = {}
        self._listeners: list[StateListener] = []
        self.up = False
        self._task = BackgroundTask(self._keep_subscribed)
        self._publish_warned = False

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Hear `channel` (before `start`); the handler runs on the event loop, must not block."""
        self._handlers[channel] = handler

    def on_state(self, listener: StateListener) -> None:
        """Be told True when the subscription is up (confirmed), False when it is lost."""
        self._listeners.append(listener)

    async def publish(self, channel: str, body: dict[str, Any]) -> bool:
        """Send one message; False (logged once per outage) when Redis did not take it."""
        payload = json.dumps({"origin": self.origin, "body": body}, separators=(",", ":"))
        try:
            await self.redis.publish(channel, payload)
        except REDIS_DOWN as exc:
            if not self._publish_warned:
                self._publish_warned = True
                log.warning("Redis did not take a message on %s (%s): other control"
                            " processes miss what this one publishes until it is back",
                            channel, exc)
            return False
        if self._publish_warned:
            self._publish_warned = False
            log.info("Redis takes this process's messages again")
        return True

    def start(self) -> None:
        self._task.start()

    async def close(self) -> None:
        await self._task.close()
        self._set_up(False)
        await self.redis.aclose()

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        for listener in self._listeners:
            try:
                listener(up)
            except Exception:  # one listener's bug must not stop the others hearing
                log.exception("a Redis link state listener failed")

    async def _keep_subscribed(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        down_since: float | None = None
        while True:
            pubsub: PubSub = self.redis.pubsub()
            try:
                await self._subscribe(pubsub)
                if down_since is not None:
                    log.warning("Redis is back after %.1f s: shared chat, revocations and"
                                " presence resume", time.monotonic() - down_since)
                down_since = None
                backoff = BACKOFF_FIRST_SECONDS
                self._set_up(True)
                await self._listen(pubsub)
            except REDIS_DOWN as exc:
                self._set_up(False)
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("Redis unreachable (%s): chat stays within this process and"
                                " the token cache is bypassed until it is back", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX_SECONDS, backoff * 2)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(*self._handlers)
        # Up only once Redis has confirmed every channel: before that, messages are missed.
        confirmed = 0
        deadline = time.monotonic() + TIMEOUT_SECONDS * 2
        while confirmed < len(self._handlers):
            if time.monotonic() > deadline:
                raise TimeoutError("Redis did not confirm the subscriptions")
            message = await pubsub.get_message(timeout=TIMEOUT_SECONDS)
            if message is None:
                continue
            if message["type"] == "subscribe":
                confirmed += 1
            else:
                self._dispatch(message)

    async def _listen(self, pubsub: PubSub) -> None:
        last_ping = last_pong = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_pong > PING_TIMEOUT_SECONDS:
                raise TimeoutError("Redis stopped answering pings")
            if now - last_ping >= PING_EVERY_SECONDS:
                await pubsub.ping(_PING)
                last_ping = now
            message = await pubsub.get_message(timeout=PING_EVERY_SECONDS / 2)
            if message is None:
                continue
            if message["type"] == "pong":
                last_pong = time.monotonic()
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] != "message":
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        handler = self._handlers.get(channel)
        try:
            envelope = json.loads(message["data"])
            if envelope.get("origin") == self.origin or handler is None:
                return
            handler(envelope["body"])
        except Exception:  # a bad message, or a handler's bug: the link stays up
            log.exception("could not handle a message on %s", channel)
