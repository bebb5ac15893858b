"""Where rate limits keep their counts: the protocol, and the in-process store.

Each limit is a bucket kept as one number, its "theoretical arrival time" (the generic
cell rate algorithm): every attempt pushes it `period` seconds further; an attempt is
allowed while it stays within `burst` periods of now. So a key allows a burst, then one
attempt per period, and costs one float however busy it is. The in-process store is the
embedded default; control/accounts/redis_rate_limit_store.py shares the counts between processes.
Time is given by the caller (seconds since the epoch, the same in every process).
"""

from __future__ import annotations

from typing import Protocol

# Keys an attacker can mint (addresses, usernames) are capped: past this many, the least
# recently used are forgotten, which at worst lets that key start afresh.
MAX_KEYS = 100_000


class RateLimitStore(Protocol):
    async def take(self, key: str, burst: int, period: float, now: float) -> float:
        """Spend one attempt: 0 when allowed, else the seconds until one is (nothing spent)."""
        ...

    async def give_back(self, key: str, period: float, now: float) -> None:
        """Return one attempt taken earlier (an attempt that turned out legitimate)."""
        ...

    async def remember(self, key: str, ttl: float, now: float) -> None:
        """Note a fact (an address that signed in to an account) for ttl seconds."""
        ...

    async def recall(self, key: str, now: float) -> bool:
        ...

    async def close(self) -> None:
        ...


def next_arrival(stored: float | None, burst: int, period: float, now: float) -> float | None:
    """The bucket's new value if one more attempt is allowed now, else None."""
    new_tat = max(stored if stored is not None else now, now) + period
    if new_tat - burst * period > now:
        return None
    return new_tat


def wait_seconds(stored: float, burst: int, period: float, now: float) -> float:
    """How long until `stored` allows one more attempt."""
    return max(0.0, max(stored, now) + period - burst * period - now)


class InProcessStore:
    """Counts in this process's memory, bounded to MAX_KEYS of each kind."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        # Both map a key to the time it expires; insertion order is least recently used first.
        self._buckets: dict[str, float] = {}
        self._facts: dict[str, float] = {}

    def _put(self, table: dict[str, float], key: str, expires: float) -> None:
        table.pop(key, None)
        if len(table) >= self._max_keys:
            del table[next(iter(table))]
        table[key] = expires

    @staticmethod
    def _get(table: dict[str, float], key: str, now: float) -> float | None:
        expires = table.get(key)
        if expires is not None and expires <= now:
            del table[key]
            return None
        return expires

    async def take(self, key: str, burst: int, period: float, now: float) -> float:
        stored = self._get(self._buckets, key, now)
        new_tat = next_arrival(stored, burst, period, now)
        if new_tat is None:
            assert stored is not None
            return wait_seconds(stored, burst, period, now)
        self._put(self._buckets, key, new_tat)
        return 0.0

    async def give_back(self, key: str, period: float, now: float) -> None:
        stored = self._get(self._buckets, key, now)
        if stored is None:
            return
        if stored - period <= now:
            del self._buckets[key]
        else:
            self._buckets[key] = stored - period

    async def remember(self, key: str, ttl: float, now: float) -> None:
        self._put(self._facts, key, now + ttl)

    async def recall(self, key: str, now: float) -> bool:
        return self._get(self._facts, key, now) is not None

    async def close(self) -> None:
        return None
