"""A chat socket that stops reading costs nobody else anything: posts and moderation calls
return at once, the other readers get every message, and the stuck reader is dropped.

The stuck reader is a real aiohttp WebSocket client that never reads; its receive buffer
and the server's send buffer for it are shrunk to 4 KiB, so the teacher's large posts
(exempt from the rate limit; 2 MB in all) fill every buffer on the way many times over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from config.settings import Settings
from control.chat.connection import CLOSE_TOO_SLOW, ChatConnection
from control.chat.hub import CHAT_HUB, ChatHub
from support.api_client import Api, Person
from support.chat_client import Frame, connect, eventually, live_session, receive
from support.world import World

SIZE = 50_000  # characters per message
POSTS = 40
# Generous: a post answers in milliseconds; before the fix it never did.
PROMPTLY = 10.0


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # (frames a socket may have queued, longest send in seconds): small by default, so
    # the stuck reader is dropped during the test; huge when the test needs it to stay.
    queue, timeout = getattr(request, "param", (16, 2))
    return dataclasses.replace(settings, courses=dataclasses.replace(
        settings.courses, chat_max_length=SIZE, chat_send_queue_frames=queue,
        chat_send_timeout_seconds=timeout, chat_access_recheck_seconds=3600,
    ))


@pytest.fixture
def hub(api: Api) -> ChatHub:
    hub: ChatHub = api.client.app[CHAT_HUB]
    return hub


def text(i: int) -> str:
    return f"{i:06d}" + "x" * (SIZE - 6)


async def stuck_reader(
    api: Api, hub: ChatHub, sid: int, who: Person | None
) -> ClientWebSocketResponse:
    ws = await connect(api, sid, who)
    ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    [server_side] = [c for c in hub.connections(sid) if c.user_id == (who and who.id)]
    assert server_side.transport is not None
    server_side.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
    )
    return ws


async def post(ws: ClientWebSocketResponse, i: int) -> Frame:
    """Post message i and wait for its echo; the send is bounded too (a stalled handler
    stops reading its socket, and then the sender's own writes block)."""

    async def go() -> Frame:
        await ws.send_json({"type": "message", "text": text(i)})
        return await receive(ws)

    return await asyncio.wait_for(go(), PROMPTLY)


def collect(ws: ClientWebSocketResponse, into: list[Frame]) -> asyncio.Task[None]:
    async def read() -> None:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                into.append(message.json())

    return asyncio.create_task(read())


def anonymous(hub: ChatHub, sid: int) -> list[ChatConnection]:
    return [c for c in hub.connections(sid) if c.user_id is None]


async def test_a_reader_that_stops_reading_is_dropped_and_nobody_waits(
    api: Api, world: World, hub: ChatHub
) -> None:
    sid = await live_session(api, world)
    stuck = await stuck_reader(api, hub, sid, None)  # anonymous readers are allowed here
    student = await connect(api, sid, world.student)
    teacher = await connect(api, sid, world.teacher)
    got: list[Frame] = []
    reading = collect(student, got)
    for i in range(POSTS):
        echo = await post(teacher, i)
        assert echo["text"][:6] == f"{i:06d}"
    # The reader that reads got everything, in order.
    await eventually(lambda: len(got) == POSTS)
    assert [f["text"][:6] for f in got] == [f"{i:06d}" for i in range(POSTS)]
    # The stuck one left the room; reading now, it finds its connection closed (with
    # the close code if the close frame got through, else cut).
    await eventually(lambda: not anonymous(hub, sid))
    async with asyncio.timeout(PROMPTLY * 3):
        while True:
            message = await stuck.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    if message.type == WSMsgType.CLOSE:
        assert message.data == CLOSE_TOO_SLOW
    # The room carries on.
    assert (await post(teacher, POSTS))["text"][:6] == f"{POSTS:06d}"
    await eventually(lambda: len(got) == POSTS + 1)
    reading.cancel()
    await teacher.close()
    await student.close()


@pytest.mark.parametrize("settings", [(100_000, 3600)], indirect=True)
async def test_posting_and_moderation_never_wait_on_a_stuck_reader(
    api: Api, world: World, hub: ChatHub
) -> None:
    """Here the stuck reader is never dropped: its queue is long and sends never time
    out. Everyone else must not notice it."""
    sid = await live_session(api, world)
    c = world.course_id
    stuck = await stuck_reader(api, hub, sid, world.student2)
    teacher = await connect(api, sid, world.teacher)
    ids = [(await post(teacher, i))["id"] for i in range(POSTS)]
    # Its buffers really are full: frames wait for it.
    [held] = [conn for conn in hub.connections(sid) if conn.user_id == world.student2.id]
    await eventually(lambda: held.backlog > 0)

    async def promptly(call: Any) -> Any:
        return await asyncio.wait_for(call, PROMPTLY)

    await promptly(api.delete(f"/chat/messages/{ids[0]}", world.teacher, expect=204))
    await promptly(api.post(f"/courses/{c}/chat-mutes", world.teacher,
                            json={"user_id": world.student2.id, "minutes": 5}, expect=201))
    await promptly(api.put(f"/courses/{c}/chat-settings", world.teacher,
                           json={"slow_mode_seconds": 10}, expect=200))
    # A ban tells the banned user's sockets: this one is the stuck one.
    await promptly(api.post(f"/courses/{c}/chat-bans", world.teacher,
                            json={"user_id": world.student2.id}, expect=201))
    for i in range(POSTS, POSTS + 5):
        await post(teacher, i)
    assert held in hub.connections(sid)
    await teacher.close()
    stuck._response.close()
