"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from control.db.database import Database
from control.db.migrate import is_current, upgrade
from control.models import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _check(database: Database) -> None:
    assert not await is_current(database)
    await upgrade(database)
    assert await is_current(database)
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    await upgrade(database)  # applying again is harmless


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        await _check(database)
    finally:
        await database.close()


async def test_migrations_on_postgresql(request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue("postgres_url")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS academia_migrations")
        await admin.execute("CREATE DATABASE academia_migrations")
    finally:
        await admin.close()
    database = Database(url.rsplit("/", 1)[0] + "/academia_migrations")
    try:
        await _check(database)
    finally:
        await database.close()
