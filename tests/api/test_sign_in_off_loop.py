"""Password hashing never blocks the event loop or holds the writer lock.

argon2 is made slow on purpose: a hasher that blocks until the test lets it go stands in
for it. While a sign-in, a registration, an account creation or a password change sits in
the hasher, a cheap read and a write by someone else must both be answered. Before the
fix the hasher ran on the event loop inside the write transaction: nothing else ran
until it returned.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import ClientResponse

from config.settings import AuthSettings
from control.accounts.passwords import Passwords
from control.http.state import STATE
from support.api_client import Api
from support.world import World

GATE_TIMEOUT_S = 5.0


class GatedPasswords(Passwords):
    """Every hash and verify waits until `release` is set (or a timeout), in whatever
    thread it is called, and says whether one is in progress."""

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self.entered = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _gate(self) -> None:
        with self._lock:
            self._in_flight += 1
        self.entered.set()
        try:
            self.release.wait(GATE_TIMEOUT_S)
        finally:
            with self._lock:
                self._in_flight -= 1

    def hash(self, password: str) -> str:
        self._gate()
        return super().hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self._gate()
        return super().verify(password_hash, password)


def gate(api: Api) -> GatedPasswords:
    gated = GatedPasswords(api.settings.auth)
    api.client.app[STATE].passwords = gated
    return gated


async def others_are_served_while_hashing(
    api: Api, world: World, gated: GatedPasswords, slow: asyncio.Task[ClientResponse]
) -> None:
    """With `slow` inside the hasher, a read and a write both answer."""
    assert await asyncio.to_thread(gated.entered.wait, GATE_TIMEOUT_S)
    try:
        read = await api.client.get("/categories/")
        assert read.status == 200
        assert gated.in_flight, "the read waited for the hasher"
        write = await api.client.post(
            "/categories/", json={"name": f"Physics {id(slow)}"}, headers=world.admin.headers
        )
        assert write.status == 201, await write.text()
        assert gated.in_flight, "the write waited for the hasher"
    finally:
        gated.release.set()
        await slow


def call(api: Api, method: str, path: str, **kwargs: Any) -> asyncio.Task[ClientResponse]:
    return asyncio.create_task(api.client.request(method, path, **kwargs))


async def test_failing_logins_do_not_stall_other_requests(api: Api, world: World) -> None:
    gated = gate(api)
    # Four clients failing sign-ins at once: two in the hasher's threads, two waiting.
    flood = [
        call(api, "POST", "/auth/login", json={"username": name, "password": "wrong-guess"})
        for name in ("teacher", "student1", "ghost", "admin")
    ]
    try:
        assert await asyncio.to_thread(gated.entered.wait, GATE_TIMEOUT_S)
        read = await api.client.get("/categories/")
        assert read.status == 200
        assert gated.in_flight, "the read waited for the hasher"
    finally:
        gated.release.set()
        answers = await asyncio.gather(*flood)
    assert [a.status for a in answers] == [401] * 4


async def test_login_hashes_off_the_loop_and_outside_the_write_lock(
    api: Api, world: World
) -> None:
    gated = gate(api)
    slow = call(api, "POST", "/auth/login",
                json={"username": "student1", "password": world.student.password})
    await others_are_served_while_hashing(api, world, gated, slow)
    assert (await slow).status == 200


async def test_registration_hashes_off_the_loop(api: Api, world: World) -> None:
    gated = gate(api)
    slow = call(api, "POST", "/auth/register",
                json={"username": "newbie", "password": "long-enough-pw"})
    await others_are_served_while_hashing(api, world, gated, slow)
    assert (await slow).status == 201


async def test_admin_user_creation_hashes_off_the_loop(api: Api, world: World) -> None:
    gated = gate(api)
    slow = call(api, "POST", "/users/", headers=world.admin.headers,
                json={"username": "prof", "password": "long-enough-pw", "role": "teacher"})
    await others_are_served_while_hashing(api, world, gated, slow)
    assert (await slow).status == 201


async def test_password_change_hashes_off_the_loop(api: Api, world: World) -> None:
    gated = gate(api)
    slow = call(api, "PATCH", f"/users/{world.student.id}/", headers=world.admin.headers,
                json={"password": "a-brand-new-pw"})
    await others_are_served_while_hashing(api, world, gated, slow)
    assert (await slow).status == 200
    gated.release.set()
    await api.post("/auth/login", json={"username": "student1", "password": "a-brand-new-pw"},
                   expect=200)


async def test_a_password_changed_during_the_check_does_not_sign_in(
    api: Api, world: World
) -> None:
    """The check runs before the transaction, so the token is only issued if the hash it
    matched is still the account's."""
    gated = gate(api)
    slow = call(api, "POST", "/auth/login",
                json={"username": "student1", "password": world.student.password})
    assert await asyncio.to_thread(gated.entered.wait, GATE_TIMEOUT_S)
    # The admin's change hashes too: let the gate open for it, the login is already inside.
    gated.release.set()
    await api.patch(f"/users/{world.student.id}/", world.admin,
                    json={"password": "changed-meanwhile"}, expect=200)
    answer = await slow
    assert answer.status in (200, 401)  # raced: either the old hash or the new one won
    if answer.status == 200:
        token = (await answer.json())["token"]
        # Signed in before the change: the change revoked that token.
        await api.get("/auth/me", headers={"Authorization": f"Bearer {token}"}, expect=401)


async def test_nobody_but_an_admin_makes_the_server_hash(api: Api, world: World) -> None:
    gated = gate(api)
    gated.release.set()
    for who in (None, world.teacher, world.student):
        headers = who.headers if who else {}
        await api.post("/users/", headers=headers, expect=401 if who is None else 403,
                       json={"username": "xxx", "password": "long-enough-pw", "role": "admin"})
        await api.patch(f"/users/{world.student.id}/", headers=headers,
                        expect=401 if who is None else 403, json={"password": "long-enough-pw"})
    assert not gated.entered.is_set()
