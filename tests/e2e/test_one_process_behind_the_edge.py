"""One `academia serve` (role all) with a node secret, and the nginx edge in front of it:
the process tells its own registry which classes it carries, so the edge's playback check
names it as the origin, and a class plays through the edge; the edge's second request for
a segment is served from its cache.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config.settings import Settings
from mediaserver.edge.nginx_config import edge_config
from support.cluster_processes import free_port
from support.live_stack import (
    LiveStack,
    Segment,
    decode,
    finished,
    media_playlist_uris,
    media_segments,
    publish_ffmpeg,
    stack_settings,
    wait_for,
)
from support.nginx_edge import NginxEdge, nginx_binary

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")

SECRET = "one-process-node-secret-0123456789"


def behind_an_edge(settings: Settings, edge_port: int) -> Settings:
    node_url = f"http://127.0.0.1:{settings.server.http_port}"
    return dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, public_url=f"http://127.0.0.1:{edge_port}"),
        streaming=dataclasses.replace(settings.streaming, transcode_mode="passthrough",
                                      segment_seconds=1),
        cluster=dataclasses.replace(
            settings.cluster, node_secret=SECRET, node_name="solo", node_url=node_url,
            node_heartbeat_seconds=1, edge_listen=f"127.0.0.1:{edge_port}",
            edge_control_urls=node_url, edge_media_nodes=f"solo={node_url}"),
    )


async def test_a_class_plays_through_an_edge_in_front_of_one_process(tmp_path: Path) -> None:
    edge_port = free_port()
    settings = behind_an_edge(stack_settings(tmp_path / "var"), edge_port)
    async with LiveStack(settings) as stack:
        edge = NginxEdge(edge_config(settings, tmp_path / "edge"), tmp_path / "edge", edge_port)
        await edge.start()
        publisher = await publish_ffmpeg(stack.rtmp_url, seconds=20, size="640x360",
                                         gop_seconds=1)
        try:
            session_id = await stack.live_session_id()
            grant = await stack.playback(session_id)
            assert grant["url"].startswith(edge.url + "/play/")
            assert stack.http is not None
            http = stack.http

            async def listed() -> list[str] | None:
                async with http.get(grant["url"]) as response:
                    if response.status != 200:
                        return None  # the edge's check: no carrier until the first beat
                    uris: list[str] = media_playlist_uris(await response.text())
                    return uris

            uris = await wait_for(listed, within=20, what="the master through the edge")
            media_url = grant["url"].rsplit("/", 1)[0] + "/" + uris[0]

            async def segments() -> list[Segment] | None:
                async with http.get(media_url) as response:
                    found = media_segments(await response.text())
                    return found if response.status == 200 and found else None

            segment = (await wait_for(segments, within=20, what="a segment listed"))[-1]
            base = media_url.rsplit("/", 1)[0] + "/"
            assert segment.init is not None
            async with http.get(base + segment.init) as response:
                init = await response.read()
            caches = []
            for _ in range(2):
                async with http.get(base + segment.uri) as response:
                    assert response.status == 200
                    body = await response.read()
                    caches.append(response.headers.get("X-Academia-Edge-Cache"))
            assert caches == ["MISS", "HIT"], caches
            assert decode(init + body)["frames"] > 0
            listing = await stack.json("GET", "/nodes/")
            assert [(n["name"], n["session_ids"]) for n in listing["results"]] == [
                ("solo", [session_id])]
        finally:
            await finished(publisher, within=30)
            await edge.stop()
