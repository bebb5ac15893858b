"""A control plane served over real HTTP to media nodes, for tests of several processes in
one: the node secret, settings for a control process and for a media node pointing at it,
and a fake media node's observer that records what the control plane tells it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.sessions.live_observer import LiveObserver
from mediaserver.node_api import NodeClasses, add_node_routes

NODE_SECRET = "test-node-secret-0123456789abcdef"


def with_cluster(settings: Settings, **changes: Any) -> Settings:
    """`settings` with the node secret set, and any other [cluster] changes."""
    changes.setdefault("node_secret", NODE_SECRET)
    cluster = dataclasses.replace(settings.cluster, **changes)
    return dataclasses.replace(settings, cluster=cluster)


async def serve_control(
    aiohttp_server: Any, settings: Settings, database: Database, *,
    live_observer: LiveObserver | None = None, port: int | None = None,
) -> TestServer:
    """A control process's app on a free port, or on `port` (the node secret as
    `settings` say)."""
    server: TestServer = await aiohttp_server(
        build_app(settings, database, live_observer=live_observer), port=port)
    return server


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def media_settings(settings: Settings, control: TestServer, **changes: Any) -> Settings:
    """A media node's settings, asking the control process `control`."""
    return with_cluster(settings, role="media", control_url=base_url(control), **changes)


@dataclass
class RecordingObserver:
    """A media node's ClassObserver stand-in: records what it is told."""

    ended: list[tuple[int, int]] = field(default_factory=list)
    revoked: list[tuple[int, frozenset[int]]] = field(default_factory=list)
    streams: dict[int, dict[str, Any]] = field(default_factory=dict)
    finalising: list[tuple[int, int]] = field(default_factory=list)

    async def session_ended(self, course_id: int, session_id: int) -> None:
        self.ended.append((course_id, session_id))

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        self.revoked.append((course_id, key_ids))

    async def details(self, course_id: int) -> dict[str, Any] | None:
        return self.streams.get(course_id)

    async def finalise_recording(self, course_id: int, session_id: int) -> None:
        self.finalising.append((course_id, session_id))


def node_app(observer: NodeClasses, secret: str = NODE_SECRET) -> web.Application:
    """A media node's app carrying only its internal routes."""
    app = web.Application()
    add_node_routes(app, observer, secret)
    return app
