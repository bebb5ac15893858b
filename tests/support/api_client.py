"""The API as a test speaks to it: a person (a user and their bearer token), and a client
that calls the app as one person or another and checks the status it expects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from config.settings import Settings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import create_user
from control.db.database import Database
from control.models import Role, User


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
