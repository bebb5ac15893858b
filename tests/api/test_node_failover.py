"""A class whose media node died, as the control plane sees it: the node the encoder
reconnects to takes the session up at its go-live (and carries it from then on, whatever
the old node says); an end from the old node, or naming a session that is over, ends
nothing; a class nobody takes up within the grace period is ended by the orphan sweep,
which asks an alive node for its recording. Over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from control.models import MediaNodeRecord
from control.models.base import utcnow
from control.nodes.node_calls import NodeCalls
from control.nodes.orphan_sweep import OrphanSweep
from control.nodes.registry import carrier_of
from mediaserver.control_http import HttpControl
from mediaserver.control_port import CarriedElsewhere
from support.api_client import Api
from support.cluster import (
    RecordingObserver,
    base_url,
    media_settings,
    node_app,
    serve_control,
    with_cluster,
)
from support.world import World


@dataclass
class Nodes:
    a: HttpControl
    b: HttpControl


@pytest.fixture
async def control_server(api: Api, aiohttp_server: Any) -> TestServer:
    return await serve_control(aiohttp_server, with_cluster(api.settings), api.database)


@pytest.fixture
async def nodes(api: Api, control_server: TestServer) -> AsyncIterator[Nodes]:
    settings = media_settings(api.settings, control_server)
    async with HttpControl(settings, attempts=1, node_name="node-a") as a, \
            HttpControl(settings, attempts=1, node_name="node-b") as b:
        yield Nodes(a, b)


async def carrier(api: Api, session_id: int) -> str | None:
    dead_after = timedelta(seconds=api.settings.cluster.node_dead_seconds)
    async with api.database.transaction(write=False) as db:
        node = await carrier_of(db, session_id, now=utcnow(), dead_after=dead_after)
    return node.name if node is not None else None


async def silence(api: Api, name: str, seconds: float) -> None:
    """Make node `name` last heard `seconds` ago."""
    async with api.database.transaction(write=True) as db:
        await db.execute(update(MediaNodeRecord).where(MediaNodeRecord.name == name)
                         .values(last_seen=utcnow() - timedelta(seconds=seconds)))


async def is_live(api: Api, course_id: int) -> bool:
    status = await api.get(f"/courses/{course_id}/live-status", expect=200)
    return bool(status["is_live"])


async def test_the_node_an_encoder_reconnects_to_takes_the_session_up(
    api: Api, world: World, nodes: Nodes
) -> None:
    course = world.course_id
    await nodes.b.heartbeat("node-b", "http://10.0.0.2:8080", [])
    session_id = await nodes.a.session_goes_live(course)
    await nodes.a.heartbeat("node-a", "http://10.0.0.1:8080", [session_id])
    assert await carrier(api, session_id) == "node-a"

    # node-a is cut off; the encoder reconnects to node-b: the same session, carried by
    # node-b at once (before its next heartbeat names it).
    assert await nodes.b.session_goes_live(course) == session_id
    assert await carrier(api, session_id) == "node-b"
    # node-a, back and still holding on (heard last), does not take it back.
    await nodes.b.heartbeat("node-b", "http://10.0.0.2:8080", [session_id])
    await nodes.a.heartbeat("node-a", "http://10.0.0.1:8080", [session_id])
    assert await carrier(api, session_id) == "node-b"
    # node-b dies: node-a, still alive and claiming it, is the carrier left.
    await silence(api, "node-b", api.settings.cluster.node_dead_seconds + 1)
    assert await carrier(api, session_id) == "node-a"


async def test_an_end_from_a_node_the_class_moved_away_from_ends_nothing(
    api: Api, world: World, nodes: Nodes
) -> None:
    course = world.course_id
    session_id = await nodes.a.session_goes_live(course)
    await nodes.a.heartbeat("node-a", "http://10.0.0.1:8080", [session_id])
    await nodes.b.heartbeat("node-b", "http://10.0.0.2:8080", [])
    assert await nodes.b.session_goes_live(course) == session_id

    # node-a's grace period ran out (or its retried end arrives late): ignored.
    with pytest.raises(CarriedElsewhere):
        await nodes.a.end_session(course, session_id)
    with pytest.raises(CarriedElsewhere):
        await nodes.a.end_session(course, None)  # a go-live whose answer it lost
    assert await is_live(api, course)

    # The carrier ends it; a late end naming it ends nothing of the next class.
    await nodes.b.end_session(course, session_id)
    assert not await is_live(api, course)
    second = await nodes.b.session_goes_live(course)
    assert second != session_id
    await nodes.b.end_session(course, session_id)
    await nodes.a.end_session(course, session_id)
    assert await is_live(api, course)
    await nodes.b.end_session(course, second)
    assert not await is_live(api, course)


@dataclass
class Finaliser:
    """Records what the sweep asks; answers with `node` (None: no node reached)."""

    node: str | None = "node-b"
    asked: list[tuple[int, int]] = field(default_factory=list)

    async def finalise_recording(self, course_id: int, session_id: int) -> str | None:
        self.asked.append((course_id, session_id))
        return self.node


async def test_a_class_no_node_takes_up_within_the_grace_period_is_ended(
    api: Api, world: World, nodes: Nodes
) -> None:
    settings = with_cluster(api.settings)
    grace = settings.streaming.reconnect_grace_seconds
    dead = settings.cluster.node_dead_seconds
    finaliser = Finaliser(node=None)
    sweep = OrphanSweep(settings, api.database, finaliser)
    course = world.course_id

    # Started on the web, no node carries it yet: never the sweep's.
    await api.post(f"/courses/{course}/start-live", world.teacher, expect=200)
    assert await sweep.sweep() == []
    session_id = await nodes.a.session_goes_live(course)
    await nodes.a.heartbeat("node-a", "http://10.0.0.1:8080", [session_id])

    await silence(api, "node-a", dead + 1)  # dead, but within the grace period
    assert await sweep.sweep() == []
    await silence(api, "node-a", grace + 1)
    assert await sweep.sweep() == [session_id]
    assert not await is_live(api, course)
    assert finaliser.asked == [(course, session_id)]  # nobody answered: asked again
    finaliser.node = "node-b"
    assert await sweep.sweep() == []
    assert finaliser.asked == [(course, session_id)] * 2
    assert await sweep.sweep() == []
    assert len(finaliser.asked) == 2  # taken: not asked again

    # Taken up by node-b before the grace ran out: node-b carries it, nothing ends.
    second = await nodes.a.session_goes_live(course)
    await nodes.a.heartbeat("node-a", "http://10.0.0.1:8080", [second])
    await silence(api, "node-a", dead + 1)
    await nodes.b.heartbeat("node-b", "http://10.0.0.2:8080", [])
    assert await nodes.b.session_goes_live(course) == second
    await silence(api, "node-a", grace + 1)
    assert await sweep.sweep() == []
    assert await is_live(api, course)


async def test_node_calls_ask_an_alive_node_for_a_recording(
    api: Api, world: World, nodes: Nodes, aiohttp_server: Any
) -> None:
    observer = RecordingObserver()
    node = await aiohttp_server(node_app(observer))
    calls = NodeCalls(with_cluster(api.settings), api.database, timeout=1.0)
    try:
        assert await calls.finalise_recording(world.course_id, 5) is None  # no node alive
        await nodes.b.heartbeat("node-b", base_url(node), [])
        assert await calls.finalise_recording(world.course_id, 5) == "node-b"
    finally:
        await calls.close()
    assert observer.finalising == [(world.course_id, 5)]
