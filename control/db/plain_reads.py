"""Read-only SQL run straight on the database driver, for hot read paths (the course list).

Going through SQLAlchemy's async adapters costs more than the query on small pages: on
SQLite every statement is four hand-offs to aiosqlite's thread (cursor, execute, fetch,
close) plus the commit, and PostgreSQL's pre-ping costs three round trips per checkout.
Here a query that SQLAlchemy compiled once (see `control.api.course_list_query`) is run:

- on SQLite, in one hand-off to a small thread pool whose threads each keep their own
  read-only connection (autocommit: each SELECT is its own snapshot, like any read in WAL
  mode);
- on PostgreSQL, in one round trip on a connection from a small asyncpg pool of its own
  (no pre-ping, no reset query on release, statements prepared once per connection): a
  connection that died (server restart) is dropped and the query tried once more.

Rows are plain tuples (asyncpg records) with the driver's own values: SQLite gives
datetimes as text and booleans as 0/1, PostgreSQL gives datetime and bool objects.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import make_url

Rows = Sequence[Sequence[Any]]


class PlainReads:
    """Runs SQL text with positional parameters; use `for_url` to get the right kind."""

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> Rows:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteReads(PlainReads):
    def __init__(self, path: str, threads: int = 2) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit BEGIN, so nothing to commit afterwards.
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _run(self, sql: str, parameters: Sequence[Any]) -> Rows:
        return self._connection().execute(sql, parameters).fetchall()

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> Rows:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, sql, parameters)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()


class AsyncpgReads(PlainReads):
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.pool_size = pool_size
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    import asyncpg  # only installed and needed with PostgreSQL

                    # No reset on release: these connections never change session state.
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self.pool_size, reset=_no_reset
                    )
        return self._pool

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> Rows:
        pool = await self._connections()
        retry_on: tuple[type[BaseException], ...] = (OSError, *_disconnect_errors())
        for attempt in (1, 2):
            async with pool.acquire() as conn:
                try:
                    rows: Rows = await conn.fetch(sql, *parameters)
                    return rows
                except retry_on:
                    # A dead connection is closed by the pool on release; try a fresh one.
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _no_reset(_connection: Any) -> None:
    return None


def _disconnect_errors() -> tuple[type[Exception], ...]:
    import asyncpg

    # InterfaceError also covers misuse; retrying that once only fails once more.
    return (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.InterfaceError)


def for_url(url: str) -> PlainReads | None:
    """The plain reader for this database URL, or None when there is none (in-memory
    SQLite, other drivers): callers then use their SQLAlchemy path."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return SqliteReads(path)
    if parsed.drivername == "postgresql+asyncpg":
        return AsyncpgReads(url)
    return None
