"""Password hashing with argon2id; the cost comes from settings.

argon2 is deliberately slow (tens of milliseconds of CPU and `password_memory_cost_kib`
of memory per call), so a server never runs it on its event loop: `hash_off_loop` and
`verify_off_loop` run it in a small thread pool of its own (argon2-cffi releases the GIL
while it works). The pool is bounded, so a flood of sign-ins can neither take every
thread of the process nor allocate more than threads x memory cost at once; callers
beyond it wait their turn without holding anything.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.settings import AuthSettings


class Passwords:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_cost_kib,
        )
        chosen = settings.password_hash_threads
        self._threads = chosen if chosen > 0 else max(1, (os.cpu_count() or 2) // 2)
        # Made on first use: the command line and the tests' fixtures only hash inline.
        self._pool: ThreadPoolExecutor | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def hash_off_loop(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor(), self.hash, password
        )

    async def verify_off_loop(self, password_hash: str, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor(), self.verify, password_hash, password
        )

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="argon2")
        return self._pool

    def close(self) -> None:
        """Let the threads go once the work queued so far is done (at application cleanup)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# A real hash to verify against when the user does not exist, so a wrong username
# costs as much time as a wrong password and does not reveal who has an account.
def dummy_hash(passwords: Passwords) -> str:
    return passwords.hash("not a real password")
