"""The throwaway PostgreSQL server starts, accepts connections and stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from support.postgres_server import postgres_available, start_postgres, stop_postgres


@pytest.mark.skipif(
    not postgres_available(),
    reason="PostgreSQL server binaries missing (install Debian's `postgresql` package)",
)
def test_start_connect_stop(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        assert server.url.startswith("postgresql+asyncpg://")
        assert server.url.endswith("/academia_test")

        async def select_one() -> int:
            conn = await asyncpg.connect(server.dsn)
            try:
                return int(await conn.fetchval("select 1"))
            finally:
                await conn.close()

        # asyncio.run keeps this test independent of the suite's async fixtures.
        assert asyncio.run(select_one()) == 1
    finally:
        stop_postgres(server)
    assert not (server.data_dir / "postmaster.pid").exists()
