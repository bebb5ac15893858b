"""Rate-limit counts shared by every process through Redis (`redis_url`).

The same buckets as control/accounts/rate_limit_store.py, each updated by one Lua script so that
two processes taking from one bucket at once cannot both get its last attempt. When Redis
cannot be reached, each process limits alone (an in-process store, logged) rather than
failing every sign-in or letting every attempt through, and tries Redis again a few
seconds later (not on every call: a Redis that does not answer would cost each sign-in
its timeout).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control.accounts.rate_limit_store import InProcessStore

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "academia:rl:"
TIMEOUT_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0
RETRY_AFTER_SECONDS = 5.0

# KEYS[1] the bucket; ARGV now, burst, period. Returns "0" (taken) or the seconds to wait.
_TAKE = """
local now = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
if tat + period - burst * period > now then
  return tostring(tat + period - burst * period - now)
end
local new_tat = tat + period
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil((new_tat - now) * 1000)))
return '0'
"""

# KEYS[1] the bucket; ARGV now, period.
_GIVE_BACK = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local tat = tonumber(stored) - period
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.max(1, math.ceil((tat - now) * 1000)))
end
return 0
"""


class RedisRateLimitStore:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self._take = self._redis.register_script(_TAKE)
        self._give_back = self._redis.register_script(_GIVE_BACK)
        self._fallback = InProcessStore()
        self._warned_at = -WARN_EVERY_SECONDS
        self._down_until = 0.0

    async def _shared(self, call: Callable[[], Awaitable[Any]], alone: Callable[[], Awaitable[T]],
                      ) -> T | Any:
        if time.monotonic() < self._down_until:
            return await alone()
        try:
            return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            if time.monotonic() - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = time.monotonic()
                log.warning("rate limits: Redis unreachable (%s); this process limits alone",
                            exc)
            return await alone()

    async def take(self, key: str, burst: int, period: float, now: float) -> float:
        answer = await self._shared(
            lambda: self._take(keys=[PREFIX + key], args=[repr(now), burst, repr(period)]),
            lambda: self._fallback.take(key, burst, period, now),
        )
        return float(answer.decode() if isinstance(answer, bytes) else answer)

    async def give_back(self, key: str, period: float, now: float) -> None:
        await self._shared(
            lambda: self._give_back(keys=[PREFIX + key], args=[repr(now), repr(period)]),
            lambda: self._fallback.give_back(key, period, now),
        )

    async def remember(self, key: str, ttl: float, now: float) -> None:
        await self._shared(
            lambda: self._redis.set(PREFIX + key, b"1", px=max(1, int(ttl * 1000))),
            lambda: self._fallback.remember(key, ttl, now),
        )

    async def recall(self, key: str, now: float) -> bool:
        found = await self._shared(
            lambda: self._redis.exists(PREFIX + key),
            lambda: self._fallback.recall(key, now),
        )
        return bool(found)

    async def close(self) -> None:
        await self._redis.aclose()
