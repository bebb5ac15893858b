"""A token bucket: a burst of messages, then a steady refill; time is given, not read."""

from __future__ import annotations

from datetime import datetime


class TokenBucket:
    def __init__(self, capacity: int, refill_seconds: float, now: datetime) -> None:
        self.capacity = float(capacity)
        self.refill_seconds = refill_seconds
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: datetime) -> None:
        elapsed = max(0.0, (now - self.updated).total_seconds())
        if self.refill_seconds > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed / self.refill_seconds)
        else:
            self.tokens = self.capacity
        self.updated = max(self.updated, now)

    def take(self, now: datetime) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def full(self, now: datetime) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity
