"""A small school served on a real port for the page tests (Debian's chromium drives the
pages): the control app alone (no media node) on SQLite, a few signed-up people with
their API tokens, and a client calling the API as any of them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config.loading import load_settings
from config.settings import Settings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import create_user
from control.app import build_app
from control.db.database import Database
from control.models import Role
from control.resources.resource_store import ResourceStore
from control.storage_policy.media_store import MediaStore
from support.live_stack import free_port

PASSWORD = "school-password-1"


@dataclasses.dataclass
class PageSchool:
    base: str
    settings: Settings
    database: Database
    tokens: dict[str, str]
    ids: dict[str, int]
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, who: str, body: Any = None,
                   expect: int = 200) -> Any:
        """The API as `who`; the answer's JSON (None for an empty answer)."""
        async with self.http.request(method, self.base + path, json=body, headers={
                "Authorization": f"Bearer {self.tokens[who]}"}) as response:
            assert response.status == expect, await response.text()
            return await response.json() if response.content_length != 0 else None


@asynccontextmanager
async def page_school(
    tmp_path: Path, people: dict[str, Role],
    tune: Callable[[Settings], Settings] = lambda settings: settings,
    media_store: MediaStore | None = None, resource_store: ResourceStore | None = None,
) -> AsyncIterator[PageSchool]:
    """The app on a free port with `people` (username: role; password PASSWORD);
    `tune` changes the test settings before the app is built; the stores, as the
    composition root would hand them in (none: no storage view, no course files)."""
    base = load_settings(environ={})
    port = free_port()
    settings = tune(dataclasses.replace(
        base,
        server=dataclasses.replace(base.server, data_dir=tmp_path / "var", http_port=port),
        # Cheap password hashing: the tests sign in, they do not measure argon2.
        auth=dataclasses.replace(base.auth, password_time_cost=1, password_memory_cost_kib=64),
        # No background sender: a test that wants deliveries runs a worker itself.
        notifications=dataclasses.replace(base.notifications, outbox_poll_seconds=0),
    ))
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'school.sqlite3'}")
    await database.create_all()
    passwords = Passwords(settings.auth)
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    async with database.transaction(write=True) as db:
        for name, role in people.items():
            user = await create_user(db, passwords, username=name, password=PASSWORD,
                                     role=role)
            tokens[name], _ = await issue_token(db, user, 3600)
            ids[name] = user.id
    passwords.close()
    runner = web.AppRunner(build_app(settings, database, media_store=media_store,
                                     resource_store=resource_store))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield PageSchool(settings.public_url, settings, database, tokens, ids, http)
    finally:
        await runner.cleanup()
        await database.close()
