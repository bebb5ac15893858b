"""Shared fixtures: every API test runs once on SQLite and once on PostgreSQL.

PostgreSQL is Debian's server, started once per test run in a temporary folder
(tests/postgres_server.py). Set ACADEMIA_TEST_DATABASES=sqlite to run SQLite alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.loading import load_settings
from config.settings import Settings
from control.accounts import create_user
from control.api.app import build_app
from control.auth_tokens import issue_token
from control.database import Database
from control.models import Role, User
from control.passwords import Passwords

DATABASES = os.environ.get("ACADEMIA_TEST_DATABASES", "sqlite,postgresql").split(",")
_pg_schema_ready: set[str] = set()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from postgres_server import postgres_available, start_postgres, stop_postgres

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


@dataclass
class Person:
    user: User
    token: str
    password: str

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """A test client that speaks as one person or another."""

    def __init__(self, client: TestClient[Any, Any], database: Database, settings: Settings):
        self.client = client
        self.database = database
        self.settings = settings
        self.passwords = Passwords(settings.auth)
        self._counter = 0

    async def person(self, role: Role, username: str | None = None) -> Person:
        self._counter += 1
        name = username or f"{role.value}{self._counter}"
        password = f"pw-{name}-secret"
        async with self.database.transaction(write=True) as db:
            user = await create_user(
                db, self.passwords, username=name, password=password, role=role
            )
            token, _ = await issue_token(db, user, 3600)
        return Person(user, token, password)

    async def call(
        self, method: str, path: str, who: Person | None = None, json: Any = None,
        expect: int | None = None, **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers.update(who.headers)
        response = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        text = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {text}"
        self.last_status = response.status
        if not text:
            return None
        if response.content_type == "application/json":
            return await response.json()
        return text

    async def get(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        return await self.call("GET", path, who, **kw)

    async def post(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        return await self.call("POST", path, who, **kw)

    async def put(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        return await self.call("PUT", path, who, **kw)

    async def patch(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        return await self.call("PATCH", path, who, **kw)

    async def delete(self, path: str, who: Person | None = None, **kw: Any) -> Any:
        return await self.call("DELETE", path, who, **kw)


@pytest.fixture
async def api(aiohttp_client: Any, database: Database, settings: Settings) -> Api:
    client = await aiohttp_client(build_app(settings, database))
    return Api(client, database, settings)


@dataclass
class World:
    """A small school: an admin, two teachers, three students, a category, a course."""

    admin: Person
    teacher: Person
    other_teacher: Person
    student: Person
    student2: Person
    student3: Person
    category_id: int
    course_id: int


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


async def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a refused call changed nothing."""
    from control.models import Base

    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(table.select())).all()
            tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return tables
