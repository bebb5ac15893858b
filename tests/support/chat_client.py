"""The chat WebSocket as browsers open it (a ticket first, then the upgrade), and reading
its frames; shared by the chat tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientWebSocketResponse

from support.api_client import Api, Person
from support.world import World

Frame = dict[str, Any]
# The headers of a WebSocket upgrade: sent with api.get, they show a refusal's JSON body.
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


async def live_session(api: Api, world: World) -> int:
    live = await api.post(f"/courses/{world.course_id}/start-live", world.teacher, expect=200)
    return int(live["session_id"])


async def ticket(api: Api, session_id: int, who: Person | None) -> str:
    answer = await api.post(f"/sessions/{session_id}/chat-ticket", who, expect=201)
    return str(answer["ticket"])


async def connect(
    api: Api, session_id: int, who: Person | None, **kw: Any
) -> ClientWebSocketResponse:
    pass_ = await ticket(api, session_id, who)
    ws: ClientWebSocketResponse = await api.client.ws_connect(
        f"/sessions/{session_id}/chat?ticket={pass_}", **kw
    )
    return ws


async def receive(ws: ClientWebSocketResponse) -> Frame:
    frame = await ws.receive_json(timeout=10)
    assert isinstance(frame, dict)
    return frame


async def until(ws: ClientWebSocketResponse, found: Callable[[Frame], bool]) -> list[Frame]:
    """Every frame up to and including the first one `found` accepts."""
    frames = []
    while True:
        frame = await receive(ws)
        frames.append(frame)
        if found(frame):
            return frames


async def say(ws: ClientWebSocketResponse, text: Any) -> Frame:
    """Send a message; the sender's next frame is its echo or its error."""
    await ws.send_json({"type": "message", "text": text})
    return await receive(ws)


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
