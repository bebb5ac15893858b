"""Course resources through the processes `academia serve` runs: the one-process node
(`--role all`) and a control process (`--role control`) each hand the API the media side's
`ResourceStore` over the configured storage (the composition root), so a file uploaded
over a real socket lands under `<data_dir>/media/resources/{course_id}/` and comes back
through its signed link."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import pytest

from config.settings import Settings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import create_user
from control.db.database import Database
from control.models import Category, Role
from mediaserver.control_node import ControlNode
from mediaserver.node import MediaNode

PDF = b"%PDF-1.4\n% handout\n" + b"0123456789" * 500 + b"\n%%EOF\n"


class Served(Protocol):
    @property
    def http_port(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'served.sqlite3'}")
    await db.create_all()
    try:
        yield db
    finally:
        await db.close()


def media_node(settings: Settings, database: Database) -> Served:
    return MediaNode(dataclasses.replace(
        settings, streaming=dataclasses.replace(settings.streaming, rtmp_port=0)), database)


def control_node(settings: Settings, database: Database) -> Served:
    return ControlNode(settings, database)


@pytest.mark.parametrize("make", [media_node, control_node], ids=["all", "control"])
async def test_an_upload_lands_in_the_configured_storage_and_comes_back(
    make: Callable[[Settings, Database], Served], settings: Settings, database: Database,
) -> None:
    served = dataclasses.replace(settings, server=dataclasses.replace(settings.server,
                                                                       http_port=0))
    passwords = Passwords(settings.auth)
    async with database.transaction(write=True) as db:
        teacher = await create_user(db, passwords, username="tess", password="pw-tess-1234",
                                    role=Role.TEACHER)
        token, _ = await issue_token(db, teacher, 3600)
    passwords.close()
    node = make(served, database)
    await node.start()
    try:
        base = f"http://127.0.0.1:{node.http_port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(base, headers=headers) as http:
            call: Callable[..., Awaitable[Any]] = _caller(http)
            admin_made = await _admin_category(database)
            course = await call("POST", "/courses/", 201, json={
                "title": "Served", "category_id": admin_made})
            row = await call("POST", f"/courses/{course['id']}/resources", 201, data=PDF,
                             params={"title": "Handout", "filename": "handout.pdf"})
            stored = served.server.data_dir / "media" / "resources" / str(course["id"])
            assert await asyncio.to_thread(contents, stored) == [PDF]
            grant = await call("GET", f"/resources/{row['id']}/download-url", 200)
            link = urlsplit(grant["url"])  # the public URL names the port of a real setup
            async with aiohttp.ClientSession() as anonymous, \
                    anonymous.get(f"{base}{link.path}?{link.query}") as response:
                assert response.status == 200 and await response.read() == PDF
    finally:
        await node.close()


def contents(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.iterdir())]


def _caller(http: aiohttp.ClientSession) -> Callable[..., Awaitable[Any]]:
    async def call(method: str, path: str, expect: int, **kw: Any) -> Any:
        async with http.request(method, path, **kw) as response:
            assert response.status == expect, await response.text()
            return await response.json()

    return call


async def _admin_category(database: Database) -> int:
    async with database.transaction(write=True) as db:
        category = Category(name="Maths")
        db.add(category)
        await db.flush()
        return category.id
