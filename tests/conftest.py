"""Shared fixtures: every API test runs once on SQLite and once on PostgreSQL.

PostgreSQL is Debian's server, started once per test run in a temporary folder
(tests/support/postgres_server.py). Set ACADEMIA_TEST_DATABASES=sqlite to run SQLite alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# Helpers assert too (the storage behaviours, the RTMP client...): pytest explains their
# failures as it does a test's. Registered before the first helper is imported.
pytest.register_assert_rewrite("support")

from config.loading import load_settings  # noqa: E402
from config.settings import Settings  # noqa: E402
from control.app import build_app  # noqa: E402
from control.db.database import Database  # noqa: E402
from control.models import Role  # noqa: E402
from support.api_client import Api  # noqa: E402
from support.browser import chromium  # noqa: E402, F401
from support.live_stack import stack  # noqa: E402, F401
from support.redis_server import redis_server  # noqa: E402, F401
from support.world import World  # noqa: E402

DATABASES = os.environ.get("ACADEMIA_TEST_DATABASES", "sqlite,postgresql").split(",")
_pg_schema_ready: set[str] = set()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from support.postgres_server import postgres_available, start_postgres, stop_postgres

    if not postgres_available():
        pytest.fail("PostgreSQL server binaries are missing: run `make test`, which installs them")
    server = start_postgres(tmp_path_factory.mktemp("pg"))
    try:
        yield server.url
    finally:
        stop_postgres(server)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(
        base,
        server=dataclasses.replace(base.server, data_dir=tmp_path / "var"),
        # Cheap hashing keeps tests fast; production keeps argon2's real cost.
        auth=dataclasses.replace(base.auth, password_time_cost=1, password_memory_cost_kib=64),
        payments=dataclasses.replace(base.payments, payment_webhook_secret="test-webhook-secret"),
        # No background sender: notification tests run the outbox worker themselves.
        notifications=dataclasses.replace(base.notifications, outbox_poll_seconds=0),
    )


@pytest.fixture(params=[d for d in DATABASES if d])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}")
        await db.create_all()
    else:
        url = request.getfixturevalue("postgres_url")
        db = Database(url)
        if url not in _pg_schema_ready:
            await db.create_all()
            _pg_schema_ready.add(url)
        await db.truncate_all()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def api(aiohttp_client: Any, database: Database, settings: Settings) -> Api:
    client = await aiohttp_client(build_app(settings, database))
    return Api(client, database, settings)


@pytest.fixture
async def world(api: Api) -> World:
    admin = await api.person(Role.ADMIN, "admin")
    teacher = await api.person(Role.TEACHER, "teacher")
    other_teacher = await api.person(Role.TEACHER, "other_teacher")
    student, student2, student3 = [
        await api.person(Role.STUDENT, f"student{i}") for i in (1, 2, 3)
    ]
    category = await api.post("/categories/", admin, json={"name": "Maths"}, expect=201)
    course = await api.post(
        "/courses/", teacher,
        json={"title": "Algebra", "description": "Groups and rings",
              "category_id": category["id"], "access_level": "public", "capacity": 30},
        expect=201,
    )
    return World(admin, teacher, other_teacher, student, student2, student3, category["id"],
                 course["id"])
