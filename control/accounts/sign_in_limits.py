"""Rate limits on signing in and registering, per client address and per account.

- Failed sign-ins per address: a burst, then one attempt per refill period.
- Failed sign-ins per account, from any address: the same shape, so a distributed
  guesser gets a few attempts a minute on an account, however many addresses it has.
  A per-account limit that locked the account would hand an attacker the power to keep
  a teacher out of their class; this one only slows down, and an address that signed in
  to the account recently (`login_known_source_days`) is not held back by it at all, so
  the teacher's own machine still gets in while someone else hammers the account. The
  address limit still applies to everyone.
- Registrations per address, successful or not.
- Chat tickets asked for anonymously, per address: each is a database write that no
  account stands behind.

An attempt is counted before the password is checked (so parallel attempts cannot
outrun the limit) and given back when it succeeds: successful sign-ins cost nothing.
A refused attempt costs no argon2 work at all. Unknown usernames are limited exactly like
real ones, so a 429 says nothing about who has an account. Limits with a burst of 0 are off.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from config.settings import AuthSettings
from control.accounts.rate_limit_store import RateLimitStore
from control.errors import RateLimited


@dataclass(frozen=True)
class Rule:
    burst: int
    period: float

    @property
    def on(self) -> bool:
        return self.burst > 0 and self.period > 0


@dataclass
class LoginAttempt:
    """The attempts one sign-in took, to give back if it succeeds."""

    address: str
    account: str
    taken: list[tuple[str, Rule]] = field(default_factory=list)


def _account_key(username: str) -> str:
    # Usernames are case-insensitive; hashed so any username makes a short, plain key.
    return hashlib.sha256(username.lower().encode()).hexdigest()[:32]


class SignInLimits:
    def __init__(
        self, settings: AuthSettings, store: RateLimitStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._clock = clock
        self._per_address = Rule(settings.login_ip_burst, settings.login_ip_refill_seconds)
        self._per_account = Rule(
            settings.login_account_burst, settings.login_account_refill_seconds
        )
        self._known_source_seconds = settings.login_known_source_days * 86_400.0
        self._registrations = Rule(
            settings.register_ip_burst, settings.register_ip_refill_seconds
        )
        self._anonymous_tickets = Rule(
            settings.anonymous_ticket_ip_burst, settings.anonymous_ticket_ip_refill_seconds
        )

    async def _take(self, key: str, rule: Rule, message: str) -> None:
        wait = await self.store.take(key, rule.burst, rule.period, self._clock())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(seconds, f"{message}; try again in {seconds} s")

    async def before_login(self, address: str, username: str) -> LoginAttempt:
        """Count a sign-in attempt; raises RateLimited when a limit says wait."""
        attempt = LoginAttempt(address, _account_key(username))
        message = "too many failed sign-ins"
        if self._per_address.on:
            await self._take(f"login:ip:{address}", self._per_address, message)
            attempt.taken.append((f"login:ip:{address}", self._per_address))
        if self._per_account.on and not await self.store.recall(
            self._known_key(attempt), self._clock()
        ):
            key = f"login:account:{attempt.account}"
            try:
                await self._take(key, self._per_account, message)
            except RateLimited:
                await self._give_back(attempt)  # nothing was checked: the address owes nothing
                raise
            attempt.taken.append((key, self._per_account))
        return attempt

    async def login_succeeded(self, attempt: LoginAttempt) -> None:
        await self._give_back(attempt)
        if self._per_account.on and self._known_source_seconds > 0:
            await self.store.remember(
                self._known_key(attempt), self._known_source_seconds, self._clock()
            )

    async def before_registration(self, address: str) -> None:
        if self._registrations.on:
            await self._take(
                f"register:ip:{address}", self._registrations,
                "too many registrations from your address",
            )

    async def before_anonymous_ticket(self, address: str) -> None:
        if self._anonymous_tickets.on:
            await self._take(
                f"ticket:ip:{address}", self._anonymous_tickets,
                "too many chat tickets for your address",
            )

    async def _give_back(self, attempt: LoginAttempt) -> None:
        for key, rule in attempt.taken:
            await self.store.give_back(key, rule.period, self._clock())
        attempt.taken.clear()

    @staticmethod
    def _known_key(attempt: LoginAttempt) -> str:
        return f"login:known:{attempt.account}:{attempt.address}"

    async def close(self) -> None:
        await self.store.close()
