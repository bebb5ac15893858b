"""Failed sign-ins are limited per address and per account, registrations per address:
429 with Retry-After and the usual error body, no argon2 work for a refused attempt, and
a teacher kept out by nobody else's failures on their account."""

from __future__ import annotations

import asyncio
from typing import Any

from control.db.database import Database
from control.models import Role
from support.api_client import Api
from support.sign_in_limit_fixtures import (
    Clock,
    CountingHasher,
    limited_api,
    limited_settings,
    source,
)

WRONG = "wrong-guess"


async def login(api: Api, username: str, password: str, address: str = "198.51.100.1") -> Any:
    return await api.post("/auth/login", json={"username": username, "password": password},
                          headers=source(address))


async def refused(api: Api, username: str, password: str, address: str, retry_after: int,
                  ) -> None:
    """The attempt is answered 429, with Retry-After and the usual error body."""
    response = await api.client.post(
        "/auth/login", json={"username": username, "password": password},
        headers=source(address),
    )
    body = await response.json()
    assert response.status == 429, body
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["retry_after"] == retry_after
    assert response.headers["Retry-After"] == str(retry_after)


async def test_failed_sign_ins_from_one_address_are_limited(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    clock = Clock()
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, login_ip_burst=3, login_ip_refill_seconds=60), clock=clock)
    student = await api.person(Role.STUDENT, "ana")
    hasher = CountingHasher(api)
    for name in ("ana", "bob", "ghost"):
        await login(api, name, WRONG)
        assert api.last_status == 401
    await refused(api, "carla", WRONG, "198.51.100.1", 60)
    # The right password from that address waits too; no argon2 was spent on either.
    await refused(api, "ana", student.password, "198.51.100.1", 60)
    assert hasher.calls == 3
    # Another address is not held back.
    await login(api, "ana", student.password, "198.51.100.2")
    assert api.last_status == 200
    # One more attempt per refill period.
    clock.now += 60
    await login(api, "ana", student.password)
    assert api.last_status == 200


async def test_successful_sign_ins_cost_nothing(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, login_ip_burst=2, login_account_burst=2), clock=Clock())
    student = await api.person(Role.STUDENT, "ana")
    for _ in range(6):
        await login(api, "ana", student.password)
        assert api.last_status == 200
    for _ in range(2):
        await login(api, "ana", WRONG)
        assert api.last_status == 401
    await login(api, "ana", WRONG)
    assert api.last_status == 429


async def test_spoofed_forwarded_for_is_not_believed_by_default(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, proxies="", login_ip_burst=3), clock=Clock())
    for i in range(3):
        await login(api, f"user{i}", WRONG, address=f"203.0.113.{i}")
        assert api.last_status == 401
    await login(api, "user9", WRONG, address="203.0.113.99")
    assert api.last_status == 429


async def test_guessing_an_account_from_many_addresses_is_slowed_not_locking_its_owner_out(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    clock = Clock()
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, login_account_burst=3, login_account_refill_seconds=60), clock=clock)
    teacher = await api.person(Role.TEACHER, "teacher")
    await login(api, "teacher", teacher.password, "192.0.2.10")  # the teacher's machine
    assert api.last_status == 200
    hasher = CountingHasher(api)
    for i in range(3):
        await login(api, "teacher", WRONG, f"203.0.113.{i}")
        assert api.last_status == 401
    for i in range(3, 20):  # a botnet: every address new, the account's limit holds
        await refused(api, "teacher", WRONG, f"203.0.113.{i}", 60)
    assert hasher.calls == 3
    # The teacher's own machine is not held back by the others' failures.
    await login(api, "teacher", teacher.password, "192.0.2.10")
    assert api.last_status == 200
    # From a new place the teacher is slowed down like anyone, never locked out.
    await refused(api, "teacher", teacher.password, "192.0.2.77", 60)
    clock.now += 60
    await login(api, "teacher", teacher.password, "192.0.2.77")
    assert api.last_status == 200


async def test_unknown_usernames_are_limited_like_real_ones(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, login_account_burst=2), clock=Clock())
    await api.person(Role.STUDENT, "ana")
    answers = {}
    for name in ("ana", "ghost"):
        for i in range(3):
            answers[name, i] = (await login(api, name, WRONG, f"203.0.113.{i}"), api.last_status)
    for i in range(3):
        assert answers["ana", i] == answers["ghost", i]
    assert [answers["ana", i][1] for i in range(3)] == [401, 401, 429]


async def test_parallel_guesses_cannot_outrun_the_limit(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, login_ip_burst=3), clock=Clock())
    await api.person(Role.STUDENT, "ana")
    hasher = CountingHasher(api)
    responses = await asyncio.gather(*(
        api.client.post("/auth/login", json={"username": "ana", "password": WRONG},
                        headers=source("198.51.100.1"))
        for _ in range(12)
    ))
    assert sorted(r.status for r in responses) == [401] * 3 + [429] * 9
    assert hasher.calls == 3


async def test_registrations_are_limited_per_address(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    clock = Clock()
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, register_ip_burst=2, register_ip_refill_seconds=300), clock=clock)

    async def register(name: str, address: str) -> Any:
        return await api.post("/auth/register", headers=source(address),
                              json={"username": name, "password": "long-enough-pw"})

    await register("one", "198.51.100.1")
    await register("two", "198.51.100.1")
    assert api.last_status == 201
    answer = await register("three", "198.51.100.1")
    assert api.last_status == 429
    assert answer["error"]["code"] == "rate_limited"
    await register("three", "198.51.100.2")
    assert api.last_status == 201
    clock.now += 300
    await register("four", "198.51.100.1")
    assert api.last_status == 201


async def test_default_limits_stop_a_flood_from_one_address(api: Api) -> None:
    """The shipped defaults are on: an endless run of failures from one address ends in 429."""
    burst = api.settings.auth.login_ip_burst
    assert burst > 0
    statuses = []
    for i in range(burst + 10):
        await api.post("/auth/login", json={"username": f"nobody{i}", "password": WRONG})
        statuses.append(api.last_status)
    assert set(statuses[:burst]) == {401}
    assert set(statuses[burst:]) == {429}
