"""Two control processes on one database and one Redis (a real redis-server, killed and
started again on the same port): the chat crosses between them, a revocation on one is
refused by the other at once, presence is the union, and a Redis outage leaves each
process chatting alone, losing nothing from the database, until Redis is back.

Each "process" is a control app built by `build_app` with its own Database object (so
its own token cache) and its own aiohttp test server, in this one test process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from redis.asyncio import Redis
from sqlalchemy import select

from config.settings import Settings
from control.app import build_app
from control.chat.redis_presence import KEY as PRESENCE_KEY
from control.db.database import Database
from control.models import ChatMessage
from control.redis_sharing import REDIS_LINK
from control.secrets_hashing import digest
from support.api_client import Api, Person
from support.chat_client import Frame, connect, eventually, live_session, receive, say, until
from support.redis_server import (
    RedisServer,
    kill_redis,
    start_redis,
    stop_redis,
)
from support.world import World

# How soon the other process refuses a revoked token (its token cache lives far longer).
REVOCATION_REACHES_S = 1.0

# What the issue promises for a message between processes; a bound, not a measurement.
ACROSS_SECONDS = 1.0
# Posting must neither hang nor fail while Redis is away.
POST_BOUND_SECONDS = 5.0
# The links notice a killed Redis at once (the connection resets) or within their ping
# timeout, and reconnect within their longest backoff.
LINK_SECONDS = 10.0


@pytest.fixture
def settings(settings: Settings, redis_server: RedisServer) -> Settings:
    # A slow refill keeps the flood test's count exact however slow the machine is; access
    # re-checks stay out of the way.
    return dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, redis_url=redis_server.url),
        courses=dataclasses.replace(settings.courses, chat_access_recheck_seconds=3600,
                                    chat_rate_refill_seconds=60),
    )


@pytest.fixture
async def other(aiohttp_client: Any, database: Database, settings: Settings,
                api: Api) -> AsyncIterator[Api]:
    """The second control process (`api` is the first): same database, same Redis."""
    second_database = Database(database.url)
    client = await aiohttp_client(build_app(settings, second_database))
    other = Api(client, second_database, settings)
    await eventually(lambda: links_up(api, other), within=LINK_SECONDS)
    try:
        yield other
    finally:
        await client.close()
        await second_database.close()


def links_up(*apis: Api) -> bool:
    return all(a.client.app[REDIS_LINK].up for a in apis)


def links_down(*apis: Api) -> bool:
    return not any(a.client.app[REDIS_LINK].up for a in apis)


async def across(ws: ClientWebSocketResponse) -> Frame:
    frame = await ws.receive_json(timeout=ACROSS_SECONDS)
    assert isinstance(frame, dict)
    return frame


async def post(ws: ClientWebSocketResponse, text: str) -> Frame:
    async with asyncio.timeout(POST_BOUND_SECONDS):
        return await say(ws, text)


async def stored_texts(database: Database, session_id: int) -> list[str]:
    async with database.transaction(write=False) as db:
        rows = await db.scalars(
            select(ChatMessage.text).where(ChatMessage.session_id == session_id)
            .order_by(ChatMessage.id)
        )
        return list(rows)


async def test_a_message_posted_on_one_process_reaches_the_other_once(
    api: Api, other: Api, world: World
) -> None:
    sid = await live_session(api, world)
    poster = await connect(api, sid, world.student)
    neighbour = await connect(api, sid, world.student3)  # same process as the poster
    reader = await connect(other, sid, world.student2)
    echo = await post(poster, "hello from A")
    assert echo["text"] == "hello from A"
    assert await across(reader) == echo
    assert await receive(neighbour) == echo
    # Exactly once everywhere: the next frame each gets is the next message.
    marker = await post(poster, "marker")
    assert await across(reader) == marker
    assert await receive(neighbour) == marker
    # And back the other way.
    reply = await post(reader, "hello from B")
    assert await across(poster) == reply
    assert await receive(neighbour) == reply
    for ws in (poster, neighbour, reader):
        await ws.close()


async def test_moderation_reaches_the_other_process(
    api: Api, other: Api, world: World
) -> None:
    sid = await live_session(api, world)
    student = await connect(other, sid, world.student)
    classmate = await connect(other, sid, world.student2)
    sent = await post(student, "spam")
    assert (await receive(classmate))["id"] == sent["id"]
    # The teacher deletes and bans through the first process.
    await api.delete(f"/chat/messages/{sent['id']}", world.teacher, expect=204)
    assert await across(classmate) == {"type": "deleted", "id": sent["id"]}
    assert await across(student) == {"type": "deleted", "id": sent["id"]}
    await api.post(f"/courses/{world.course_id}/chat-bans", world.teacher,
                   json={"user_id": world.student.id}, expect=201)
    told = await across(student)
    assert told["type"] == "error" and told["code"] == "banned"
    await student.close()
    await classmate.close()


async def sign_in(api: Api, person: Person) -> dict[str, str]:
    login = await api.post("/auth/login", json={"username": person.user.username,
                                                "password": person.password}, expect=200)
    return {"Authorization": f"Bearer {login['token']}"}


async def refused_by(other: Api, headers: dict[str, str]) -> None:
    """`other` refuses the token within a moment of the revoking answer: the revoking
    process answers once Redis has taken the message, and the other reads it from its
    subscription a few milliseconds later (here, in the same event loop, whenever the
    loop gets to it); never by a cache's lifetime."""
    deadline = time.monotonic() + REVOCATION_REACHES_S
    while True:
        response = await other.client.get("/courses/", headers=headers)
        if response.status == 401:
            return
        assert response.status == 200 and time.monotonic() < deadline, response.status
        await asyncio.sleep(0.01)


async def test_a_logout_on_one_process_is_refused_by_the_other_at_once(
    api: Api, other: Api, world: World
) -> None:
    headers = await sign_in(api, world.student)
    token_hash = digest(headers["Authorization"].removeprefix("Bearer "))
    # The other process has the token cached (reads go through its cache).
    await other.get("/courses/", headers=headers, expect=200)
    await other.get("/courses/", headers=headers, expect=200)
    assert other.database.token_cache.get(token_hash) is not None
    await api.post("/auth/logout", headers=headers, expect=204)
    await refused_by(other, headers)
    # A password change (every token of the account revoked) likewise.
    second = await sign_in(api, world.student2)
    await other.get("/courses/", headers=second, expect=200)
    await api.patch(f"/users/{world.student2.id}/", world.admin,
                    json={"password": "a-brand-new-password"}, expect=200)
    await refused_by(other, second)


async def test_presence_is_the_union_over_processes(
    api: Api, other: Api, world: World
) -> None:
    sid = await live_session(api, world)
    here = await connect(api, sid, world.student)
    there = await connect(other, sid, world.student2)
    both = {world.student.id, world.student2.id}

    async def seen(by: Api) -> set[int]:
        answer = await by.get(f"/sessions/{sid}/chat-presence", world.student3, expect=200)
        assert answer["complete"] is True
        return {u["id"] for u in answer["users"]}

    for by in (api, other):
        deadline = asyncio.get_running_loop().time() + LINK_SECONDS
        while await seen(by) != both:
            assert asyncio.get_running_loop().time() < deadline, "presence not shared"
            await asyncio.sleep(0.05)
    answer = await api.get(f"/sessions/{sid}/chat-presence", None, expect=200)
    assert {"id": world.student2.id, "username": "student2"} in answer["users"]
    # Leaving is seen by the other process too (not only when the entry expires).
    await there.close()
    deadline = asyncio.get_running_loop().time() + LINK_SECONDS
    while await seen(api) != {world.student.id}:
        assert asyncio.get_running_loop().time() < deadline, "a leaver stayed present"
        await asyncio.sleep(0.05)
    await here.close()


async def test_a_redis_outage_keeps_chat_local_and_loses_nothing(
    api: Api, other: Api, world: World, redis_server: RedisServer, tmp_path: Path
) -> None:
    sid = await live_session(api, world)
    poster = await connect(api, sid, world.student)
    neighbour = await connect(api, sid, world.student3)
    reader = await connect(other, sid, world.student2)
    before = await post(poster, "before")
    assert await across(reader) == before
    await receive(neighbour)

    kill_redis(redis_server)
    await eventually(lambda: links_down(api, other), within=LINK_SECONDS)
    # Each process chats within itself; posting neither hangs nor fails.
    during = [await post(poster, f"during {i}") for i in range(3)]
    assert [f["type"] for f in during] == ["message"] * 3
    for frame in during:
        assert await receive(neighbour) == frame
    assert (await post(reader, "during on B"))["type"] == "message"
    # While the subscription is down the token cache is bypassed: a revocation made
    # where this process cannot hear it is refused all the same.
    headers = await sign_in(api, world.student3)
    await other.get("/courses/", headers=headers, expect=200)
    await api.post("/auth/logout", headers=headers, expect=204)
    await other.get("/courses/", headers=headers, expect=401)

    restarted = start_redis(tmp_path / "redis-again", port=redis_server.port)
    try:
        await eventually(lambda: links_up(api, other), within=LINK_SECONDS)
        after = await post(poster, "after")
        # What was posted during the outage never crossed; the next message does.
        assert await across(reader) == after
        assert await receive(neighbour) == after
        reply = await post(reader, "after on B")
        assert await across(poster) == reply
    finally:
        for ws in (poster, neighbour, reader):
            await ws.close()
        stop_redis(restarted)
    assert await stored_texts(api.database, sid) == [
        "before", "during 0", "during 1", "during 2", "during on B", "after", "after on B"
    ]


async def test_a_flood_is_limited_across_processes(
    api: Api, other: Api, world: World
) -> None:
    sid = await live_session(api, world)
    burst = api.settings.courses.chat_rate_burst
    flooder = await connect(api, sid, world.student)
    answers = [(await post(flooder, f"flood {i}"))["type"] for i in range(burst + 10)]
    assert answers == ["message"] * burst + ["error"] * 10
    # The bucket is the user's, not the process's: the other process refuses too.
    elsewhere = await connect(other, sid, world.student)
    await elsewhere.send_json({"type": "message", "text": "from the other door"})
    refusal = (await until(elsewhere, lambda f: f["type"] == "error"))[-1]
    assert refusal["code"] == "rate_limited"
    assert len(await stored_texts(api.database, sid)) == burst
    await flooder.close()
    await elsewhere.close()


async def test_the_users_of_a_process_that_died_fall_out(
    api: Api, other: Api, world: World, redis_server: RedisServer
) -> None:
    sid = await live_session(api, world)
    # What a process that died a moment ago left behind: its last refresh, about to expire.
    client = Redis.from_url(redis_server.url)
    try:
        await client.zadd(PRESENCE_KEY.format(sid), {f"deadbeef:{world.student.id}:student1":
                                                     time.time() + 1.0})
    finally:
        await client.aclose()
    path = f"/sessions/{sid}/chat-presence"
    answer = await other.get(path, None, expect=200)
    assert answer["users"] == [{"id": world.student.id, "username": "student1"}]
    await asyncio.sleep(1.2)  # nothing refreshes it
    assert (await other.get(path, None, expect=200))["users"] == []
