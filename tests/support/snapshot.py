"""Every row of every table, to compare before and after a call that must change nothing."""

from __future__ import annotations

from typing import Any

from control.db.database import Database


async def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a refused call changed nothing."""
    from control.models import Base

    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(table.select())).all()
            tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return tables
