"""The rate-limit stores keep one contract, in-process and in Redis (a real redis-server
started for the tests: tests/support/redis_server.py); two app instances sharing a Redis share
the sign-in limits, and a Redis that cannot be reached leaves each process limiting alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from config.loading import load_settings
from control.accounts.rate_limit_store import InProcessStore, RateLimitStore
from control.accounts.redis_rate_limit_store import PREFIX, RedisRateLimitStore
from control.db.database import Database
from control.models import Role
from support.api_client import Api
from support.redis_server import RedisServer, redis_available, start_redis, stop_redis
from support.sign_in_limit_fixtures import limited_api, limited_settings, source

NOW = 1_900_000_000.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not redis_available():
        pytest.fail("redis-server is missing: run `make test`, which installs it")
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop_redis(server)


@pytest.fixture(params=["in-process", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitStore]:
    made: RateLimitStore
    if request.param == "redis":
        made = RedisRateLimitStore(request.getfixturevalue("redis_server").url)
    else:
        made = InProcessStore()
    try:
        yield made
    finally:
        await made.close()


def fresh_key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_a_burst_then_one_per_period(store: RateLimitStore) -> None:
    key = fresh_key()
    for _ in range(3):
        assert await store.take(key, 3, 10.0, NOW) == 0
    assert await store.take(key, 3, 10.0, NOW) == pytest.approx(10.0)
    assert await store.take(key, 3, 10.0, NOW + 4) == pytest.approx(6.0)
    assert await store.take(key, 3, 10.0, NOW + 10) == 0
    assert await store.take(key, 3, 10.0, NOW + 10) > 0
    # Given back, an attempt can be taken again at once.
    await store.give_back(key, 10.0, NOW + 10)
    assert await store.take(key, 3, 10.0, NOW + 10) == 0
    # Idle for the whole burst: full again.
    for _ in range(3):
        assert await store.take(key, 3, 10.0, NOW + 50) == 0


async def test_giving_back_an_unknown_key_is_harmless(store: RateLimitStore) -> None:
    key = fresh_key()
    await store.give_back(key, 10.0, NOW)
    assert await store.take(key, 1, 10.0, NOW) == 0
    assert await store.take(key, 1, 10.0, NOW) > 0


async def test_remembered_facts_expire(store: RateLimitStore) -> None:
    import time

    key = fresh_key()
    assert not await store.recall(key, time.time())
    await store.remember(key, 0.3, time.time())
    assert await store.recall(key, time.time())
    await asyncio.sleep(0.5)
    assert not await store.recall(key, time.time())


async def test_redis_keys_expire_on_their_own(redis_server: RedisServer) -> None:
    """Nothing an attacker mints stays in Redis longer than its limit needs."""
    import time

    store = RedisRateLimitStore(redis_server.url)
    client = Redis.from_url(redis_server.url)
    try:
        key = fresh_key()
        await store.take(key, 5, 10.0, time.time())
        await store.remember(key + ":fact", 30.0, time.time())
        assert 0 < await client.pttl(PREFIX + key) <= 10_000
        assert 0 < await client.pttl(PREFIX + key + ":fact") <= 30_000
    finally:
        await store.close()
        await client.aclose()


def test_the_in_process_store_is_bounded() -> None:
    async def run() -> None:
        store = InProcessStore(max_keys=3)
        for i in range(10):
            assert await store.take(f"k{i}", 1, 60.0, NOW) == 0
            await store.remember(f"f{i}", 60.0, NOW)
        assert len(store._buckets) == 3 and len(store._facts) == 3
        assert await store.take("k9", 1, 60.0, NOW) > 0  # the most recent are kept

    asyncio.run(run())


async def fail_logins(api: Api, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        await api.post("/auth/login", json={"username": "ana", "password": "wrong-guess"},
                       headers=source("198.51.100.7"))
        statuses.append(api.last_status)
    return statuses


async def test_two_instances_sharing_redis_share_the_limit(
    aiohttp_client: Any, database: Database, settings: Any, redis_server: RedisServer
) -> None:
    shared = limited_settings(settings, redis_url=redis_server.url,
                              login_ip_burst=4, login_ip_refill_seconds=60)
    first = await limited_api(aiohttp_client, database, shared)
    second = await limited_api(aiohttp_client, database, shared)
    student = await first.person(Role.STUDENT, "ana")
    # A unique address: other tests (and runs) share this Redis.
    address = f"198.51.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"

    async def attempt(api: Api, password: str = "wrong-guess") -> int:
        await api.post("/auth/login", json={"username": "ana", "password": password},
                       headers=source(address))
        return api.last_status

    assert [await attempt(first), await attempt(second), await attempt(first),
            await attempt(second)] == [401] * 4
    assert await attempt(first) == 429
    assert await attempt(second) == 429
    assert await attempt(second, student.password) == 429


async def test_without_redis_each_instance_limits_alone(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    alone = limited_settings(settings, login_ip_burst=2)
    first = await limited_api(aiohttp_client, database, alone)
    second = await limited_api(aiohttp_client, database, alone)
    await first.person(Role.STUDENT, "ana")
    assert await fail_logins(first, 3) == [401, 401, 429]
    assert await fail_logins(second, 1) == [401]


async def test_unreachable_redis_leaves_each_process_limiting_alone(
    aiohttp_client: Any, database: Database, settings: Any
) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    api = await limited_api(aiohttp_client, database, limited_settings(
        settings, redis_url=dead, login_ip_burst=2))
    student = await api.person(Role.STUDENT, "ana")
    await api.post("/auth/login", json={"username": "ana", "password": student.password},
                   headers=source("198.51.100.7"), expect=200)
    assert await fail_logins(api, 3) == [401, 401, 429]


def test_redis_url_is_a_setting_kept_out_of_reprs() -> None:
    settings = load_settings(environ={"ACADEMIA_REDIS_URL": "redis://:secret@127.0.0.1:6379/0"})
    assert settings.server.redis_url == "redis://:secret@127.0.0.1:6379/0"
    assert "secret" not in repr(settings)
    assert load_settings(environ={}).server.redis_url == ""
