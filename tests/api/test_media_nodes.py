"""Media nodes and control processes over real HTTP, on free ports in this process: the
internal API's door (no secret: no routes; a wrong or missing one: 401, and never
logged), the node registry (heartbeats, carriers, dead nodes, GET /nodes/), and the
control plane reaching the node that carries a class when its API ends it, revokes its
keys or shows its stream."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from config.settings import Settings
from control.app import build_app
from control.models import MediaNodeRecord
from control.models.base import utcnow
from control.node_api.edge_check import (
    CARRIER_MEMO_SECONDS,
    CHECK_PATH,
    KEEP_HEADER,
    KEEP_SPREAD_SECONDS,
    ORIGIN_HEADER,
    STORAGE_ORIGIN,
)
from control.nodes.node_calls import NodeCalls
from control.nodes.registry import carrier_of
from control.streaming.edge_questions import PLAYBACK_GRANT_SECONDS
from mediaserver.control_http import HttpControl
from mediaserver.control_port import ControlUnavailable
from support.api_client import Api
from support.cluster import (
    NODE_SECRET,
    RecordingObserver,
    base_url,
    media_settings,
    node_app,
    serve_control,
    with_cluster,
)
from support.world import World

ASK = "/internal/control/authorize-publish"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def control_server(api: Api, aiohttp_server: Any) -> TestServer:
    return await serve_control(aiohttp_server, with_cluster(api.settings), api.database)


@pytest.fixture
async def node_control(api: Api, control_server: TestServer) -> AsyncIterator[HttpControl]:
    async with HttpControl(media_settings(api.settings, control_server), attempts=1) as http:
        yield http


async def test_no_secret_no_internal_routes(api: Api, aiohttp_server: Any) -> None:
    out = await api.post(ASK, json={"app": "live", "key": "sk_x"}, expect=404)
    assert out["error"]["code"] == "not_found"
    node = await aiohttp_server(node_app(RecordingObserver(), secret=""))
    async with aiohttp.ClientSession() as http, http.post(
        f"{base_url(node)}/internal/node/session-ended", json={}) as response:
        assert response.status == 404


async def test_a_wrong_or_missing_secret_is_refused_and_never_logged(
    api: Api, control_server: TestServer, aiohttp_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    node = await aiohttp_server(node_app(RecordingObserver()))
    body = {"app": "live", "key": "sk_x"}
    async with aiohttp.ClientSession() as http:
        for url in (f"{base_url(control_server)}{ASK}",
                    f"{base_url(node)}/internal/node/session-ended"):
            for headers in ({}, {"Authorization": "Bearer wrong-secret"},
                            {"Authorization": f"Basic {NODE_SECRET}"}):
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == 401, (url, headers)
                    out = await response.json()
                    assert out["error"]["code"] == "unauthorized"
    wrong = with_cluster(media_settings(api.settings, control_server),
                         node_secret="wrong-secret")
    async with HttpControl(wrong, attempts=3) as control:
        started = time.monotonic()
        with pytest.raises(ControlUnavailable, match="401"):
            await control.authorize_publish("live", "sk_x")
        assert time.monotonic() - started < 1.0  # a 401 is not retried
    assert NODE_SECRET not in caplog.text and "wrong-secret" not in caplog.text


async def test_bodies_are_checked_and_routes_stay_out_of_openapi(
    api: Api, control_server: TestServer
) -> None:
    headers = {"Authorization": f"Bearer {NODE_SECRET}"}
    async with aiohttp.ClientSession() as http:
        for raw, status in ((b"", 400), (b"{", 400), (b'{"app": "live"}', 422),
                            (b'{"app": "live", "key": "k", "more": 1}', 422)):
            async with http.post(f"{base_url(control_server)}{ASK}", data=raw,
                                 headers=headers) as response:
                assert response.status == status, raw
                assert "error" in await response.json()
        async with http.get(f"{base_url(control_server)}/openapi.json") as response:
            document = await response.json()
    assert not [p for p in document["paths"] if p.startswith("/internal")]
    assert "/nodes/" in document["paths"]


async def test_heartbeats_carriers_and_dead_nodes(
    api: Api, world: World, node_control: HttpControl
) -> None:
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    session_id = started["session_id"]
    # An id no session has (deleted meanwhile) is left out, not refused.
    await node_control.heartbeat("node-a", "http://10.0.0.1:8080", [session_id, 10**9])
    await node_control.heartbeat("node-b", "http://10.0.0.2:8080", [])

    listing = await api.get("/nodes/", world.admin, expect=200)
    assert listing["dead_after_seconds"] == api.settings.cluster.node_dead_seconds
    nodes = {n["name"]: n for n in listing["results"]}
    assert nodes["node-a"]["alive"] and nodes["node-a"]["session_ids"] == [session_id]
    assert nodes["node-a"]["url"] == "http://10.0.0.1:8080"
    assert nodes["node-b"]["alive"] and nodes["node-b"]["session_ids"] == []
    await api.get("/nodes/", world.teacher, expect=403)
    await api.get("/nodes/", expect=401)

    dead_after = timedelta(seconds=api.settings.cluster.node_dead_seconds)
    async with api.database.transaction(write=False) as db:
        carrier = await carrier_of(db, session_id, now=utcnow(), dead_after=dead_after)
    assert carrier is not None and carrier.name == "node-a"

    # node-a falls silent: it is reported dead and no longer carries anything.
    async with api.database.transaction(write=True) as db:
        await db.execute(update(MediaNodeRecord).where(MediaNodeRecord.name == "node-a")
                         .values(last_seen=utcnow() - dead_after - timedelta(seconds=1)))
    nodes = {n["name"]: n for n in (await api.get("/nodes/", world.admin))["results"]}
    assert (nodes["node-a"]["alive"], nodes["node-b"]["alive"]) == (False, True)
    async with api.database.transaction(write=False) as db:
        assert await carrier_of(db, session_id, now=utcnow(), dead_after=dead_after) is None

    # The encoder reconnects to node-b, which now carries the session; node-a comes back
    # empty-handed and node-b still carries it; a node that drops it stops carrying it.
    await node_control.heartbeat("node-b", "http://10.0.0.2:8080", [session_id])
    await node_control.heartbeat("node-a", "http://10.0.0.1:9090", [])
    async with api.database.transaction(write=False) as db:
        carrier = await carrier_of(db, session_id, now=utcnow(), dead_after=dead_after)
    assert carrier is not None and carrier.name == "node-b"
    await node_control.heartbeat("node-b", "http://10.0.0.2:8080", [])
    nodes = {n["name"]: n for n in (await api.get("/nodes/", world.admin))["results"]}
    assert nodes["node-b"]["session_ids"] == [] and nodes["node-a"]["alive"]
    assert nodes["node-a"]["url"] == "http://10.0.0.1:9090"


@pytest.fixture
async def cluster_api(
    api: Api, aiohttp_client: Any
) -> AsyncIterator[tuple[Api, NodeCalls]]:
    """A control process whose API tells media nodes over HTTP (NodeCalls)."""
    settings: Settings = with_cluster(api.settings)
    calls = NodeCalls(settings, api.database, timeout=1.0)
    client = await aiohttp_client(build_app(settings, api.database, live_observer=calls))
    yield Api(client, api.database, settings), calls
    await calls.close()


async def test_the_api_reaches_the_node_that_carries_the_class(
    world: World, cluster_api: tuple[Api, NodeCalls], node_control: HttpControl,
    aiohttp_server: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    control, _calls = cluster_api
    observer = RecordingObserver()
    node = await aiohttp_server(node_app(observer))
    course = world.course_id

    # Reported by a heartbeat: the carrier is told, and shows its stream in live-status.
    session_id = (await control.post(f"/courses/{course}/start-live", world.teacher,
                                     expect=200))["session_id"]
    await node_control.heartbeat("node-a", base_url(node), [session_id])
    observer.streams[course] = {"input": {"video_codec": "h264"}}
    status = await control.get(f"/courses/{course}/live-status", expect=200)
    assert status["stream"] == {"input": {"video_codec": "h264"}}
    made = await control.post(f"/courses/{course}/stream-keys", world.teacher, json={},
                              expect=201)
    await control.post(f"/stream-keys/{made['id']}/revoke", world.teacher, expect=200)
    assert observer.revoked == [(course, frozenset({made["id"]}))]
    await control.post(f"/courses/{course}/end-live", world.teacher, expect=200)
    assert observer.ended == [(course, session_id)]

    # Live since the last heartbeat: every alive node is told (a dead one is logged).
    await node_control.heartbeat("node-dead", f"http://127.0.0.1:{closed_port()}", [])
    second = (await control.post(f"/courses/{course}/start-live", world.teacher,
                                 expect=200))["session_id"]
    await control.post(f"/courses/{course}/end-live", world.teacher, expect=200)
    assert observer.ended[-1] == (course, second)
    assert "media node node-dead" in caplog.text

    # The carrier is dead: the class still ends, the API answers, nothing is raised.
    third = (await control.post(f"/courses/{course}/start-live", world.teacher,
                                expect=200))["session_id"]
    await node_control.heartbeat("node-dead", f"http://127.0.0.1:{closed_port()}", [third])
    status = await control.get(f"/courses/{course}/live-status", expect=200)
    assert status["is_live"] and status["stream"] is None
    await control.post(f"/courses/{course}/end-live", world.teacher, expect=200)
    assert observer.ended[-1] == (course, second)


async def test_node_routes_check_their_bodies(aiohttp_server: Any) -> None:
    observer = RecordingObserver()
    node = await aiohttp_server(node_app(observer))
    headers = {"Authorization": f"Bearer {NODE_SECRET}"}
    url = f"{base_url(node)}/internal/node"
    async with aiohttp.ClientSession() as http:
        for route, raw, status in (
            ("session-ended", b"{", 400),
            ("session-ended", b"[]", 422),
            ("session-ended", b'{"course_id": 1}', 422),
            ("keys-revoked", b'{"course_id": 1, "key_ids": [0]}', 422),
            ("keys-revoked", b'{"course_id": 1, "key_ids": [3, 4]}', 204),
            ("stream-details", b'{"course_id": 1}', 200),
        ):
            async with http.post(f"{url}/{route}", data=raw, headers=headers) as response:
                assert response.status == status, (route, raw)
    assert observer.revoked == [(1, frozenset({3, 4}))]


async def edge_check(server: TestServer, session_id: int, token: str,
                     secret: str = NODE_SECRET) -> tuple[int, str | None]:
    """What the nginx edge's auth_request gets: a status and the origin header."""
    async with aiohttp.ClientSession() as http, http.get(
        f"{base_url(server)}{CHECK_PATH}/{session_id}/{token}",
        headers={"Authorization": f"Bearer {secret}"},
    ) as response:
        return response.status, response.headers.get(ORIGIN_HEADER)


async def test_the_edge_check_names_the_carrying_node_then_storage(
    api: Api, world: World, control_server: TestServer, node_control: HttpControl
) -> None:
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    session_id = started["session_id"]
    grant = await api.get(f"/sessions/{session_id}/playback", world.student, expect=200)
    token = grant["url"].split("/")[-2]

    # Live, but no node has said it carries the class (its node died, the encoder has
    # not come back yet): "try again", which the edge keeps for no one.
    assert await edge_check(control_server, session_id, token) == (503, None)
    await node_control.heartbeat("node-a", "http://10.0.0.1:8080", [session_id])
    assert await edge_check(control_server, session_id, token) == (204, "node-a")
    # The edge may keep the grant for whole seconds within its window, spread by token.
    async with aiohttp.ClientSession() as http, http.get(
        f"{base_url(control_server)}{CHECK_PATH}/{session_id}/{token}",
        headers={"Authorization": f"Bearer {NODE_SECRET}"},
    ) as response:
        keep = int(response.headers[KEEP_HEADER])
    assert PLAYBACK_GRANT_SECONDS - KEEP_SPREAD_SECONDS <= keep <= PLAYBACK_GRANT_SECONDS
    # The carrier is remembered a moment (a class's students ask together), no longer:
    # another node that took the class over is named within that moment.
    await node_control.heartbeat("node-b", "http://10.0.0.2:8080", [session_id])
    deadline = time.monotonic() + CARRIER_MEMO_SECONDS + 1.0
    while (answer := await edge_check(control_server, session_id, token)) != (204, "node-b"):
        assert answer == (204, "node-a") and time.monotonic() < deadline, answer
        await asyncio.sleep(0.1)

    # The door: the node secret; a token of nothing, or of another session, is refused.
    assert (await edge_check(control_server, session_id, token, "wrong"))[0] == 401
    assert (await edge_check(control_server, session_id, "A" * 40))[0] == 403
    assert (await edge_check(control_server, session_id + 1, token))[0] == 403

    # Ended with no recording yet: nothing to play; once stored, any node serves it.
    await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=200)
    assert (await edge_check(control_server, session_id, token))[0] == 404
    await node_control.recording_ready(session_id)
    assert await edge_check(control_server, session_id, token) == (204, STORAGE_ORIGIN)
