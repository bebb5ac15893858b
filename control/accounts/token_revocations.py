"""Token revocations seen by every control process at once, through Redis (CHANNEL).

Each process caches resolved sign-in tokens (control/accounts/token_cache.py). A change
committed here that empties that cache (a logout, `revoke_all_for`, a deactivated
account, a new password or role) is published; every other process empties its cache on
receipt. The revoking request does not answer before Redis has taken the message
(`wait_for_revocations`), so whoever sees that answer and goes to another process finds
the change there.

A message can be missed while the subscription is down. So the cache is trusted only
while the subscription is known to be up (control/redis_pubsub.py): from the start
until Redis confirms it, and from any error until it is confirmed again, every lookup
asks the database; on coming back, whatever the cache held is dropped.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from control.accounts.token_cache import TokenCache
from control.redis_pubsub import TIMEOUT_SECONDS, RedisPubSub

log = logging.getLogger(__name__)

CHANNEL = "academia:tokens"


class TokenRevocations:
    def __init__(self, link: RedisPubSub, cache: TokenCache) -> None:
        self._link = link
        self._cache = cache
        self._pending: set[asyncio.Task[bool]] = set()
        cache.distrust()  # until the subscription is confirmed
        cache.on_committed_change = self._changed_here
        link.subscribe(CHANNEL, self._changed_elsewhere)
        link.on_state(self._link_state)

    def _link_state(self, up: bool) -> None:
        if up:
            self._cache.trust()
        else:
            self._cache.distrust()

    def _changed_elsewhere(self, _body: dict[str, object]) -> None:
        self._cache.clear()

    def _changed_here(self) -> None:
        # Called from the commit, which cannot await: the publication runs beside it and
        # the request waits for it before answering (wait_for_revocations).
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a commit outside the event loop: nobody to tell from here
            return
        task = loop.create_task(self._link.publish(CHANNEL, {"change": "users_or_tokens"}))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def published(self) -> None:
        """Wait (bounded) until every change committed so far has been handed to Redis."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2 * TIMEOUT_SECONDS)

    def detach(self) -> None:
        """Back to one process: the cache trusts itself again."""
        self._cache.on_committed_change = None
        self._cache.trust()


def wait_for_revocations(revocations: TokenRevocations) -> Middleware:
    """A middleware: a request that revoked something answers once the others know."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            await revocations.published()

    return middleware
