"""Several control processes behind one load balancer share state through Redis
(`server.redis_url`): the chat between processes (control/chat/redis_relay.py), token
revocations (control/accounts/token_revocations.py) and chat presence
(control/chat/redis_presence.py), over one link (control/redis_pubsub.py). Sign-in and
chat rate limits go through Redis too, by their own store
(control/accounts/redis_rate_limit_store.py).

Without a Redis URL none of this exists: one process, exactly as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from control.accounts.token_revocations import TokenRevocations, wait_for_revocations
from control.chat.hub import ChatHub
from control.chat.presence import CHAT_PRESENCE
from control.chat.redis_presence import RedisPresence
from control.chat.redis_relay import RedisChatRelay
from control.db.database import Database
from control.redis_pubsub import RedisPubSub

REDIS_LINK = web.AppKey("academia_redis_link", RedisPubSub)


def share_through_redis(app: web.Application, url: str, database: Database,
                        hub: ChatHub) -> RedisPubSub:
    """Wire the shared pieces into `app` (before it starts); they run while it does."""
    link = RedisPubSub(url)
    relay = RedisChatRelay(link, hub)
    revocations = TokenRevocations(link, database.token_cache)
    presence = RedisPresence(link, hub)
    app[REDIS_LINK] = link
    app[CHAT_PRESENCE] = presence
    app.middlewares.append(wait_for_revocations(revocations))

    async def running(_app: web.Application) -> AsyncIterator[None]:
        link.start()
        relay.start()
        presence.start()
        yield
        await presence.close()
        await relay.close()
        await link.close()
        revocations.detach()  # after the link's last word (down), which distrusts the cache

    app.cleanup_ctx.append(running)
    return link
