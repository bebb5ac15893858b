"""Access taken away is gone from chat sockets already open: removed from the course,
account deactivated, signed out, role changed, a course no longer public to an anonymous
reader. Each is done through the API while the socket is open; within seconds the socket
is closed with CLOSE_ACCESS_GONE and a reason, and receives nothing more."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientWebSocketResponse, WSMessage, WSMsgType

from config.settings import Settings
from control.chat.connection import CLOSE_ACCESS_GONE
from control.chat.hub import CHAT_HUB, ChatHub
from support.api_client import Api
from support.chat_client import Frame, connect, eventually, live_session, receive, say, until
from support.world import World

# "Within seconds": the sockets re-check every second here (5 s by default); a socket
# still open after this long kept access it lost.
WITHIN = 10.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, courses=dataclasses.replace(
        settings.courses, chat_access_recheck_seconds=1
    ))


@pytest.fixture
def hub(api: Api) -> ChatHub:
    hub: ChatHub = api.client.app[CHAT_HUB]
    return hub


async def closing(ws: ClientWebSocketResponse) -> tuple[list[Frame], WSMessage]:
    """The frames received up to the close, and the close itself."""
    frames: list[Frame] = []
    async with asyncio.timeout(WITHIN):
        while True:
            message = await ws.receive()
            if message.type == WSMsgType.TEXT:
                frames.append(message.json())
            else:
                return frames, message


async def private_course_with_student(api: Api, world: World) -> int:
    c = world.course_id
    await api.patch(f"/courses/{c}/", world.teacher, json={"chat_mode": "private"}, expect=200)
    await api.post(f"/courses/{c}/enroll-student", world.teacher,
                   json={"student_id": world.student.id}, expect=201)
    return await live_session(api, world)


async def remove(api: Api, world: World) -> None:
    await api.post(f"/courses/{world.course_id}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)


async def deactivate(api: Api, world: World) -> None:
    await api.delete(f"/users/{world.student.id}/", world.admin, expect=204)


async def sign_out(api: Api, world: World) -> None:
    await api.post("/auth/logout", world.student, expect=204)


async def promote(api: Api, world: World) -> None:
    await api.patch(f"/users/{world.student.id}/", world.admin, json={"role": "teacher"},
                    expect=200)


TakeAway = Callable[[Api, World], Awaitable[None]]


# A changed role ends the socket too (what it was opened with no longer holds); this
# student, still enrolled, may open the chat again as whatever they now are.
@pytest.mark.parametrize(("take_away", "may_return"),
                         [(remove, False), (deactivate, False), (sign_out, False),
                          (promote, True)],
                         ids=["removed", "deactivated", "signed_out", "role_changed"])
async def test_a_student_who_loses_access_loses_the_open_chat(
    api: Api, world: World, hub: ChatHub, take_away: TakeAway, may_return: bool
) -> None:
    sid = await private_course_with_student(api, world)
    teacher = await connect(api, sid, world.teacher)
    student = await connect(api, sid, world.student)
    assert (await say(student, "here"))["text"] == "here"
    await take_away(api, world)
    # The teacher keeps talking; the student's socket closes within seconds.
    talking = asyncio.create_task(_keep_talking(teacher))
    _frames, close = await closing(student)
    assert close.type == WSMsgType.CLOSE and close.data == CLOSE_ACCESS_GONE
    assert str(close.extra).startswith("access withdrawn")
    await eventually(lambda: all(c.user_id != world.student.id for c in hub.connections(sid)))
    talking.cancel()
    # Nothing more reaches it.
    await teacher.send_json({"type": "message", "text": "after"})
    await until(teacher, lambda f: f.get("text") == "after")
    assert (await student.receive(timeout=1)).type == WSMsgType.CLOSED
    await api.post(f"/sessions/{sid}/chat-ticket", world.student)
    assert api.last_status == 201 if may_return else api.last_status in (401, 403)
    await teacher.close()


async def _keep_talking(ws: ClientWebSocketResponse) -> None:
    i = 0
    while True:
        await ws.send_json({"type": "message", "text": f"talk {i}"})
        i += 1
        await asyncio.sleep(0.2)


async def test_an_anonymous_reader_loses_a_course_that_is_no_longer_public(
    api: Api, world: World
) -> None:
    sid = await live_session(api, world)
    anonymous = await connect(api, sid, None)
    teacher = await connect(api, sid, world.teacher)
    assert (await say(teacher, "open to all"))["text"] == "open to all"
    assert (await receive(anonymous))["text"] == "open to all"
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"access_level": "private"}, expect=200)
    frames, close = await closing(anonymous)
    assert close.type == WSMsgType.CLOSE and close.data == CLOSE_ACCESS_GONE
    assert frames == []
    await api.post(f"/sessions/{sid}/chat-ticket", expect=401)
    await teacher.close()


async def test_those_who_keep_access_keep_the_chat(api: Api, world: World) -> None:
    """The re-checks close nobody who may still read: across several rounds of them."""
    sid = await private_course_with_student(api, world)
    student = await connect(api, sid, world.student)
    teacher = await connect(api, sid, world.teacher)
    await asyncio.sleep(3)  # three re-check periods
    assert (await say(student, "still here"))["text"] == "still here"
    await until(teacher, lambda f: f.get("text") == "still here")
    assert (await say(teacher, "me too"))["text"] == "me too"
    await student.close()
    await teacher.close()
