"""Metrics: transcode events and ingest calls move the right series, the HTTP middleware
counts by route template, GET /metrics is valid Prometheus text, and only Prometheus may
read it (a bearer token, or an admin address of its own)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from config.loading import SettingsError
from config.settings import Settings
from control.db.database import Database
from control.http.error_middleware import error_middleware
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import add_metrics_route, parse_listen_address
from mediaserver.node import MediaNode
from transcode.events import (
    BufferOverflow,
    RunStarted,
    SegmentStored,
    UploadFailed,
    WorkerFailed,
    WorkerRestarted,
    WorkerStopped,
)

ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
TOKEN = "scrape-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_events_move_the_right_series() -> None:
    m = Metrics()
    m.on_event(RunStarted("s1", 1, ()))
    m.on_event(WorkerStopped("s1"))
    assert value(m, "academia_worker_restarts_total") == 0

    m.on_event(WorkerRestarted("s1", 2, "exit 1"))
    m.on_event(WorkerRestarted("s1", 3, "exit 1"))
    m.on_event(WorkerFailed("s1", "restart loop"))
    m.on_event(BufferOverflow("s1", 4096))
    m.on_event(BufferOverflow("s1", 100))
    m.on_event(SegmentStored("recordings/1/sd/000001.m4s", 1000, 0.03))
    m.on_event(SegmentStored("recordings/1/sd/000002.m4s", 1000, 2.0))
    m.on_event(UploadFailed("recordings/1/sd/000003.m4s", "timeout"))

    assert value(m, "academia_worker_restarts_total") == 2
    assert value(m, "academia_worker_failures_total") == 1
    assert value(m, "academia_buffer_overflow_bytes_total") == 4196
    assert value(m, "academia_segment_upload_seconds_count") == 2
    assert value(m, "academia_segment_upload_seconds_sum") == 2.03
    assert value(m, "academia_segment_upload_seconds_bucket", le="0.05") == 1
    assert value(m, "academia_segment_upload_failures_total") == 1


def test_ingest_and_publishers() -> None:
    m = Metrics()
    m.publisher_started()
    m.publisher_started()
    m.publisher_stopped()
    assert value(m, "academia_active_publishers") == 1
    m.ingest_bytes(3, 1000)
    m.ingest_bytes(3, 500)
    m.ingest_bytes(4, 7)
    assert value(m, "academia_ingest_bytes_total", course="3") == 1500
    assert value(m, "academia_ingest_bytes_total", course="4") == 7


def test_registries_are_separate() -> None:
    a, b = Metrics(), Metrics()
    a.on_event(WorkerFailed("s", "x"))
    assert value(a, "academia_worker_failures_total") == 1
    assert value(b, "academia_worker_failures_total") == 0


def test_playback_refusal_reasons_are_bounded() -> None:
    m = Metrics()
    m.playback_refused("expired")
    m.playback_refused("something a remote invented")
    assert value(m, "academia_playback_refusals_total", reason="expired") == 1
    assert value(m, "academia_playback_refusals_total", reason="other") == 1


def app_with(m: Metrics, *, error_json: bool) -> web.Application:
    async def item(request: web.Request) -> web.Response:
        if request.match_info["item_id"] == "0":
            raise web.HTTPNotFound()
        return web.json_response({"id": request.match_info["item_id"]})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("bug")

    # Metrics outermost, so it sees what the error middleware made of each failure.
    middlewares = [m.middleware, error_middleware] if error_json else [m.middleware]
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/items/{item_id}", item)
    app.router.add_post("/boom", boom)
    add_metrics_route(app, m, token=TOKEN)
    return app


async def test_middleware_counts_by_route_template(aiohttp_client: ClientMaker) -> None:
    for error_json in (False, True):
        m = Metrics()
        client = await aiohttp_client(app_with(m, error_json=error_json))
        assert (await client.get("/items/41")).status == 200
        assert (await client.get("/items/42")).status == 200
        assert (await client.get("/items/0")).status == 404
        assert (await client.get("/no/such/thing")).status == 404
        assert (await client.post("/boom")).status == 500

        def count(method: str, route: str, status: str, m: Metrics = m) -> float:
            return value(
                m, "academia_http_requests_total", method=method, route=route, status=status
            )

        assert count("GET", "/items/{item_id}", "200") == 2, error_json
        assert count("GET", "/items/{item_id}", "404") == 1, error_json
        assert count("GET", "unmatched", "404") == 1, error_json
        assert count("POST", "/boom", "500") == 1, error_json
        assert value(
            m, "academia_http_request_duration_seconds_count", route="/items/{item_id}"
        ) == 3

        text = await (await client.get("/metrics", headers=AUTH)).text()
        # Raw paths never become label values.
        assert "/items/41" not in text
        assert "/no/such/thing" not in text
        await client.close()


async def test_metrics_endpoint_parses(aiohttp_client: ClientMaker) -> None:
    m = Metrics()
    client = await aiohttp_client(app_with(m, error_json=True))
    m.ingest_bytes(9, 123)
    m.on_event(SegmentStored("recordings/1/sd/000001.m4s", 10, 0.2))
    await client.get("/items/1")
    resp = await client.get("/metrics", headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    expected = {
        "academia_active_publishers": "gauge",
        "academia_ingest_bytes": "counter",
        "academia_worker_restarts": "counter",
        "academia_worker_failures": "counter",
        "academia_buffer_overflow_bytes": "counter",
        "academia_segment_upload_seconds": "histogram",
        "academia_segment_upload_failures": "counter",
        "academia_http_requests": "counter",
        "academia_http_request_duration_seconds": "histogram",
    }
    for name, kind in expected.items():
        assert families[name].type == kind, name
    ingest = {
        s.labels["course"]: s.value
        for s in families["academia_ingest_bytes"].samples
        if s.name == "academia_ingest_bytes_total"
    }
    assert ingest == {"9": 123}
    requests = [
        s for s in families["academia_http_requests"].samples
        if s.name == "academia_http_requests_total"
    ]
    assert {
        "method": "GET", "route": "/items/{item_id}", "status": "200"
    } in [s.labels for s in requests]


# -- who may read /metrics, on the node `academia serve` runs ---------------------------


@pytest.fixture
async def node_with(settings: Settings, tmp_path: Path) -> AsyncIterator[
    Callable[..., Awaitable[MediaNode]]
]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'metrics.sqlite3'}")
    await database.create_all()
    nodes: list[MediaNode] = []

    async def start(**server: Any) -> MediaNode:
        node = MediaNode(dataclasses.replace(
            settings,
            server=dataclasses.replace(settings.server, http_port=0, **server),
            streaming=dataclasses.replace(settings.streaming, rtmp_port=0),
        ), database)
        await node.start()
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            await node.close()
        await database.close()


async def _get(port: int, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{port}{path}", headers=headers
    ) as response:
        return response.status, await response.text(), dict(response.headers)


async def test_metrics_are_not_served_publicly_unless_configured(
    node_with: Callable[..., Awaitable[MediaNode]],
) -> None:
    node = await node_with()
    status, body, answer = await _get(node.http_port, "/metrics")
    assert status == 404 and "academia_" not in body
    assert answer["Content-Type"].startswith("application/json")
    # Any bearer at all changes nothing: there is no secret to match.
    status, body, _ = await _get(node.http_port, "/metrics", Authorization="Bearer ")
    assert status == 404 and "academia_" not in body


async def test_metrics_token_is_required_on_the_public_port(
    node_with: Callable[..., Awaitable[MediaNode]],
) -> None:
    node = await node_with(metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        status, body, answer = await _get(node.http_port, "/metrics", **headers)
        assert status == 401 and "academia_" not in body, headers
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(body)["error"]["code"] == "unauthorized"
    status, body, _ = await _get(node.http_port, "/metrics", **AUTH)
    assert status == 200 and "academia_http_requests_total" in body


async def test_metrics_on_an_admin_address_of_their_own(
    node_with: Callable[..., Awaitable[MediaNode]],
) -> None:
    node = await node_with(metrics_listen="127.0.0.1:0")
    assert node.metrics_listener is not None
    admin = node.metrics_listener.bound_port
    assert (await _get(node.http_port, "/metrics"))[0] == 404
    status, body, _ = await _get(admin, "/metrics")
    assert status == 200 and "academia_active_publishers" in body
    # The admin address serves metrics and nothing else.
    assert (await _get(admin, "/courses/"))[0] == 404
    assert (await _get(admin, "/"))[0] == 404


async def test_admin_address_checks_the_token_when_one_is_set(
    node_with: Callable[..., Awaitable[MediaNode]],
) -> None:
    node = await node_with(metrics_listen="127.0.0.1:0", metrics_token=TOKEN)
    assert node.metrics_listener is not None
    admin = node.metrics_listener.bound_port
    assert (await _get(admin, "/metrics"))[0] == 401
    assert (await _get(admin, "/metrics", **AUTH))[0] == 200


def test_listen_addresses() -> None:
    assert parse_listen_address("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen_address("[::1]:9108") == ("::1", 9108)
    for bad in ("9108", "127.0.0.1", ":9108", "host:port", "127.0.0.1:70000"):
        with pytest.raises(SettingsError, match="metrics_listen"):
            parse_listen_address(bad)


async def test_a_bad_admin_address_stops_the_start(
    node_with: Callable[..., Awaitable[MediaNode]],
) -> None:
    with pytest.raises(SettingsError, match="metrics_listen"):
        await node_with(metrics_listen="everywhere")
