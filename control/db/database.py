"""The database connection: an async engine, sessions, the SQLite writer lock, the token
cache its sessions keep current, and the plain reader for hot read paths."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from control.accounts import token_cache
from control.accounts.token_cache import TokenCache
from control.db.plain_reads import PlainReads, for_url
from control.models import Base


class AppSession(Session):
    """This application's sessions: they keep the token cache in their `info` current."""


token_cache.watch(AppSession)


class Database:
    """One engine per process.

    SQLite allows one writer at a time and fails, rather than waits, when a reader
    tries to become a writer mid-transaction; so in this process every writing
    transaction takes `write_lock` first, which makes read-then-write sequences
    (capacity checks) atomic. PostgreSQL needs no lock: the code takes row locks.
    """

    def __init__(self, url: str, *, echo: bool = False, plain_reads: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=20, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.token_cache = TokenCache()
        self.sessions = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            sync_session_class=AppSession,
            info={token_cache.INFO_KEY: self.token_cache},
        )
        self._write_lock = asyncio.Lock()
        # Created on first use: most processes (tests, CLI commands) never need it.
        self._plain: PlainReads | None = None
        self._plain_checked = not plain_reads

    @property
    def plain_reads(self) -> PlainReads | None:
        """The driver-level reader (see control/db/plain_reads.py), or None when turned off
        or unavailable: hot paths then run the same SQL through a session."""
        if not self._plain_checked:
            self._plain = for_url(self.url)
            self._plain_checked = True
        return self._plain

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        if not write:
            # Reads begin only when they first touch the database (autobegin): a request
            # answered from caches and plain reads pays for no transaction at all.
            async with self.sessions() as session:
                yield session
                if session.in_transaction():
                    await session.commit()
            return
        lock = self._write_lock if self.is_sqlite else contextlib.nullcontext()
        async with lock, self.sessions() as session, session.begin():
            yield session

    async def create_all(self) -> None:
        """For tests: the schema straight from the models (migrations are tested apart)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def truncate_all(self) -> None:
        """For tests on PostgreSQL: empty every table, much faster than a new database."""
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with self.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    async def close(self) -> None:
        if self._plain is not None:
            await self._plain.close()
            self._plain = None
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers go on while the writer writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
