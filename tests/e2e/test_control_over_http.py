"""A media node asking the control plane over real HTTP (HttpControl), with the RTMP
server on a real socket: a control plane that is unreachable, silent or failing gives
ControlUnavailable within a bounded time (retrying what may succeed), the encoder is told
to try again later, and a class already live keeps streaming while the control plane is
away, its end recorded once the control plane is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from config.settings import Settings
from mediaserver.control_http import HttpControl
from mediaserver.control_port import ControlUnavailable, PublishAllowed
from mediaserver.media_sink import MediaSink, SinksOnly
from mediaserver.publishing import Publishing
from mediaserver.rtmp.messages import MessageType
from mediaserver.rtmp.server import RtmpServer
from support.api_client import Api
from support.cluster import NODE_SECRET, base_url, serve_control, with_cluster
from support.rtmp_client import Client, avc_frame
from support.world import World


def node_settings(settings: Settings, control_url: str) -> Settings:
    return with_cluster(settings, role="media", control_url=control_url)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


async def unused_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_unreachable_or_silent_control_is_unavailable_within_a_bound(
    settings: Settings, silent_port: int
) -> None:
    closed = f"http://127.0.0.1:{await unused_port()}"
    async with HttpControl(node_settings(settings, closed)) as control:
        started = time.monotonic()
        with pytest.raises(ControlUnavailable, match="after 3 attempt"):
            await control.authorize_publish("live", "sk_x")
        assert time.monotonic() - started < 2.0  # refused connections: the backoff only

    silent = f"http://127.0.0.1:{silent_port}"
    async with HttpControl(node_settings(settings, silent), attempt_timeout=0.4,
                           attempts=3, backoff=0.1) as control:
        started = time.monotonic()
        with pytest.raises(ControlUnavailable, match="TimeoutError"):
            await control.end_session(1, None)
        took = time.monotonic() - started
        assert 1.2 <= took < 2.5, took  # 3 x 0.4 s, plus 0.1 + 0.2 s of backoff


async def test_server_errors_are_retried_and_refusals_are_not(
    settings: Settings, aiohttp_server: Any
) -> None:
    seen: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        if len(seen) < 3:
            return web.json_response({"error": {"code": "control_unavailable",
                                                "message": "database down"}}, status=503)
        return web.json_response({"allowed": True, "course_id": 4, "key_id": 9})

    async def refusing(_request: web.Request) -> web.Response:
        seen.append("refused")
        return web.json_response({"error": {"code": "invalid", "message": "no"}}, status=422)

    app = web.Application()
    app.router.add_post("/internal/control/authorize-publish", flaky)
    app.router.add_post("/internal/control/end-session", refusing)
    server = await aiohttp_server(app)
    async with HttpControl(node_settings(settings, base_url(server)), backoff=0.01) as control:
        assert await control.authorize_publish("live", "k") == PublishAllowed(4, 9)
        assert seen == [f"Bearer {NODE_SECRET}"] * 3
        with pytest.raises(ControlUnavailable, match="422 invalid"):
            await control.end_session(4, None)
        assert seen.count("refused") == 1


async def test_a_node_moves_on_to_the_next_control_process_and_stays_with_it(
    settings: Settings, aiohttp_server: Any
) -> None:
    asked: list[str] = []

    async def answering(_request: web.Request) -> web.Response:
        asked.append("b")
        return web.json_response({"allowed": True, "course_id": 4, "key_id": 9})

    app = web.Application()
    app.router.add_post("/internal/control/authorize-publish", answering)
    server = await aiohttp_server(app)
    gone = f"http://127.0.0.1:{await unused_port()}"
    urls = f"{gone}, {base_url(server)}/"
    # One attempt asked for, yet every control process gets its turn.
    async with HttpControl(node_settings(settings, urls), attempts=1, backoff=0.01) as control:
        assert await control.authorize_publish("live", "k") == PublishAllowed(4, 9)
        assert await control.authorize_publish("live", "k") == PublishAllowed(4, 9)
    assert asked == ["b", "b"]  # the second question went straight to the one that answered


async def test_rtmp_tells_the_encoder_to_try_later_when_control_is_unreachable(
    settings: Settings,
) -> None:
    closed = f"http://127.0.0.1:{await unused_port()}"
    async with HttpControl(node_settings(settings, closed)) as control:
        rtmp = RtmpServer(Publishing(control, SinksOnly(lambda c, s: NullSink())),
                          host="127.0.0.1", port=0, timeout=5.0)
        await rtmp.start()
        try:
            client = await Client.open(rtmp.port)
            await client.handshake()
            await client.connect()
            info = await client.publish("sk_good_0123456789abcdef")
            assert info["code"] == "NetStream.Publish.Failed"
            assert "try again" in str(info["description"])
            assert await client.closed()
            assert len(rtmp.registry) == 0
        finally:
            await rtmp.close()


class NullSink:
    def __init__(self) -> None:
        self.video = 0

    def on_metadata(self, data: Any) -> None: ...

    def on_audio(self, ts: int, payload: bytes) -> None: ...

    def on_video(self, ts: int, payload: bytes) -> None:
        self.video += 1

    async def close(self) -> None: ...


async def test_a_live_class_outlives_its_control_plane(
    api: Api, world: World, aiohttp_server: Any
) -> None:
    control_side = with_cluster(api.settings)
    server = await serve_control(aiohttp_server, control_side, api.database)
    port = server.port
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    sinks: list[NullSink] = []

    def sink(course_id: int, session_id: int) -> MediaSink:
        sinks.append(NullSink())
        return sinks[-1]

    async with HttpControl(node_settings(api.settings, base_url(server)),
                           attempt_timeout=0.5, attempts=2, backoff=0.05) as control:
        publishing = Publishing(control, SinksOnly(sink), retry_delays=(0.2, 0.5))
        rtmp = RtmpServer(publishing, host="127.0.0.1", port=0, timeout=5.0)
        await rtmp.start()
        try:
            client = await Client.open(rtmp.port)
            await client.handshake()
            await client.connect()
            info = await client.publish(made["key"])
            assert info["code"] == "NetStream.Publish.Start"
            status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
            assert status["is_live"]

            await server.close()  # the control plane goes away mid-class
            for n in range(30):
                client.media(MessageType.VIDEO, n * 33, avc_frame(n))
            await until(lambda: sinks[0].video == 30)  # the class streams on
            client.close()  # the teacher stops while it is away: the end is not lost
            await asyncio.sleep(1.0)
            status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
            assert status["is_live"]

            back = await serve_control(aiohttp_server, control_side, api.database,
                                       port=port)
            assert back.port == port
            # The retried end gets through within a retry delay or two.
            for _ in range(50):
                status = await api.get(f"/courses/{world.course_id}/live-status")
                if not status["is_live"]:
                    break
                await asyncio.sleep(0.1)
            assert not status["is_live"]
        finally:
            await rtmp.close()
            await publishing.close()


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
