"""At most one retention run at a time across control processes.

Every control process of a cluster runs the retention job; two runs planning from the
same listing would delete and audit the same recordings twice. On PostgreSQL a
session-level advisory lock, held on its own connection for the run, lets one through and
the others skip that turn. SQLite is one process's database: nothing to share.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text

from control.db.database import Database

__all__ = ["RETENTION_LOCK", "retention_turn"]

# An arbitrary constant naming this lock among the application's advisory locks.
RETENTION_LOCK = 0x5E7E_4710


@contextlib.asynccontextmanager
async def retention_turn(database: Database) -> AsyncIterator[bool]:
    """Yields True when this process may run now, False when another one is running."""
    if database.is_sqlite:
        yield True
        return
    async with database.engine.connect() as conn:
        mine = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                      {"key": RETENTION_LOCK}))
        await conn.commit()  # the lock is the session's; no transaction is left open
        try:
            yield mine
        finally:
            if mine:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": RETENTION_LOCK})
                await conn.commit()
