"""A media node SIGKILLed mid-class, in a real cluster (issue 12): one control process,
two media nodes, the nginx edge, PostgreSQL, Redis and moto's S3, each its own process
(tests/support/cluster_processes.py), an ffmpeg encoder publishing over RTMP.

- The encoder reconnects to the other node within the grace period: the same session
  goes on, numbered on from what storage holds (the live playlist through the edge lists
  the dead node's segments, one discontinuity, the new node's); the class ends from the
  API, and its recording (VOD playlist, MP4) holds both nodes' segments, every one
  decodable, with exactly one discontinuity.
- Nobody comes back: once the grace period after the dead node's last heartbeat is over,
  the control plane ends the session and the other node makes its recording from storage.

Passthrough and 1 s segments keep the two CPU cores free; heartbeats every second, a node
dead after 3 s. The failover timings are printed (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from support.cluster_processes import ADMIN_PASSWORD, Cluster, ClusterProcess, create_database
from support.cmaf_runs import decode
from support.live_stack import publish_ffmpeg
from support.nginx_edge import nginx_binary
from support.redis_server import redis_available, start_redis, stop_redis
from support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401
from transcode.hls_playlist import MediaPlaylist, parse_media_playlist
from transcode.storage.s3 import S3Storage

pytestmark = [
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg"),
    pytest.mark.skipif(not redis_available(), reason="needs Debian's redis-server"),
    pytest.mark.skipif(nginx_binary() is None, reason="needs Debian's nginx"),
]

DEAD_SECONDS = 3
WITHIN = 90.0  # a behaviour bound on a busy machine, not a timing one


async def until(check: Callable[[], Awaitable[Any]], what: str, within: float = WITHIN,
                every: float = 0.25) -> Any:
    """`check()`'s first truthy answer, polled."""
    deadline = time.monotonic() + within
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(every)


@dataclass
class Class:
    """The running cluster, as a test drives it."""

    cluster: Cluster
    control: ClusterProcess
    a: ClusterProcess
    b: ClusterProcess
    http: aiohttp.ClientSession
    storage: S3Storage
    admin: str  # a sign-in token
    course_id: int
    key: str

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.control.url}{path}", json=body,
                                     headers={"Authorization": f"Bearer {self.admin}"}) as r:
            assert r.status < 300, f"{method} {path}: {r.status} {await r.text()}"
            return await r.json() if r.status != 204 else None

    async def live_session(self) -> int | None:
        status = await self.api("GET", f"/courses/{self.course_id}/live-status")
        return int(status["session_id"]) if status.get("is_live") else None

    async def carried_by(self, node: ClusterProcess) -> set[int]:
        nodes = (await self.api("GET", "/nodes/"))["results"]
        return {s for n in nodes if n["name"] == node.name for s in n["session_ids"]}

    async def playlist(self, base: str, session_id: int) -> MediaPlaylist | None:
        """The source's playlist as a student gets it from `base` (the edge), or None."""
        grant = await self.api("GET", f"/sessions/{session_id}/playback")
        url = grant["url"].replace(self.cluster.edge_url, base).rsplit("/", 1)[0]
        async with self.http.get(f"{url}/source/index.m3u8") as response:
            if response.status != 200:
                return None
            return parse_media_playlist(await response.text())

    async def fetch(self, base: str, session_id: int, uri: str) -> int:
        grant = await self.api("GET", f"/sessions/{session_id}/playback")
        url = grant["url"].replace(self.cluster.edge_url, base).rsplit("/", 1)[0]
        async with self.http.get(f"{url}/source/{uri}") as response:
            await response.read()
            return response.status

    async def stored(self, key: str) -> bytes:
        data = await self.storage.get(key)
        assert data is not None, key
        return data


@pytest.fixture
async def start_class(tmp_path: Path, postgres_url: str, s3_server: S3Server  # noqa: F811
                      ) -> AsyncIterator[Callable[[int], Awaitable[Class]]]:
    """Starts the cluster with a reconnect grace period of the given seconds."""
    made: list[tuple[Cluster, aiohttp.ClientSession, S3Storage]] = []
    redis = start_redis(tmp_path / "redis")

    async def start(grace: int) -> Class:
        name = f"failover_{len(made)}_{int(time.time() * 1000) % 10**8}"
        cluster = Cluster(
            base_dir=tmp_path / f"cluster-{len(made)}",
            database_url=await create_database(postgres_url, name),
            redis_url=redis.url, s3_endpoint=s3_server.endpoint, bucket=name.replace("_", "-"),
            extra_env={"ACADEMIA_TRANSCODE_MODE": "passthrough",
                       "ACADEMIA_SEGMENT_SECONDS": "1",
                       "ACADEMIA_RECONNECT_GRACE_SECONDS": str(grace),
                       "ACADEMIA_NODE_HEARTBEAT_SECONDS": "1",
                       "ACADEMIA_NODE_DEAD_SECONDS": str(DEAD_SECONDS)})
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        storage = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, cluster.bucket)
        made.append((cluster, http, storage))
        await cluster.migrate()
        control = await cluster.start_control("control-1")
        a = await cluster.start_media("node-a", control)
        b = await cluster.start_media("node-b", control)
        await cluster.start_edge()
        async with http.post(f"{control.url}/auth/login", json={
                "username": "admin", "password": ADMIN_PASSWORD}) as response:
            admin = str((await response.json())["token"])
        running = Class(cluster, control, a, b, http, storage, admin, 0, "")
        courses = await running.api("GET", "/courses/")
        running.course_id = int(courses["results"][0]["id"])  # the public demo course
        running.key = str((await running.api(
            "POST", f"/courses/{running.course_id}/stream-keys", {"label": "failover"}))["key"])
        return running

    try:
        yield start
    finally:
        for cluster, http, storage in made:
            await cluster.close()
            await http.close()
            await storage.close()
        stop_redis(redis)


async def publish(node: ClusterProcess, key: str) -> asyncio.subprocess.Process:
    # Keyframes every second: each 1 s segment starts with one, passthrough cuts there.
    return await publish_ffmpeg(node.rtmp_url(key), seconds=600, size="320x240", fps=15,
                                gop_seconds=1)


async def stop(encoder: asyncio.subprocess.Process) -> None:
    if encoder.returncode is None:
        encoder.kill()
    await encoder.communicate()


async def live_with_segments(running: Class, node: ClusterProcess, count: int) -> int:
    """The session once `node` carries it and its source playlist through the edge lists
    `count` segments."""
    session_id: int = await until(running.live_session, "the class is live")

    async def enough() -> bool:
        playlist = await running.playlist(running.cluster.edge_url, session_id)
        return (session_id in await running.carried_by(node) and playlist is not None
                and len(playlist.segments) >= count)

    await until(enough, f"{count} segments through the edge from {node.name}")
    return session_id


async def check_recording(running: Class, session_id: int, discontinuities: list[int]
                          ) -> MediaPlaylist:
    """The stored VOD recording: ENDLIST, these discontinuities, every segment decodes
    with its run's init, and the MP4 lasts as long as the playlist."""
    folder = f"recordings/{session_id}/source"
    recording = parse_media_playlist((await running.stored(f"{folder}/index.m3u8")).decode())
    assert recording.ended
    assert [s.uri for s in recording.segments] == [
        f"{n:06d}.m4s" for n in range(len(recording.segments))]
    assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == discontinuities
    init = b""
    for number, segment in enumerate(recording.segments):
        if segment.init_uri:
            init = await running.stored(f"{folder}/{segment.init_uri}")
        decoded = decode(init, await running.stored(f"{folder}/{segment.uri}"))
        assert decoded.frames > 0 and decoded.audio, number
    data = await running.stored(f"recordings/{session_id}/recording.mp4")
    with av.open(io.BytesIO(data), mode="r") as mp4:
        assert mp4.duration is not None
        seconds = mp4.duration / av.time_base
    # Both nodes' runs, in order (the dead node's fetched from storage).
    assert seconds == pytest.approx(sum(s.duration for s in recording.segments), abs=1.5)
    return recording


async def test_the_encoder_reconnecting_to_another_node_continues_the_class(
    start_class: Callable[[int], Awaitable[Class]],
) -> None:
    running = await start_class(30)
    encoder = await publish(running.a, running.key)
    try:
        session_id = await live_with_segments(running, running.a, 5)
        before = await running.playlist(running.cluster.edge_url, session_id)
        assert before is not None
        assert not any(s.discontinuity for s in before.segments)

        running.cluster.kill(running.a)
        killed = time.monotonic()
        await stop(encoder)
        encoder = await publish(running.b, running.key)  # the encoder reconnects to B

        async def taken_up() -> bool:
            return session_id in await running.carried_by(running.b)

        await until(taken_up, "node-b takes the session up", every=0.1)
        took_up = time.monotonic() - killed
        assert await running.live_session() == session_id  # the same session goes on

        async def playable() -> MediaPlaylist | None:
            playlist = await running.playlist(running.cluster.edge_url, session_id)
            if playlist is None or not any(s.discontinuity for s in playlist.segments):
                return None
            last = playlist.segments[-1]
            if await running.fetch(running.cluster.edge_url, session_id, last.uri) != 200:
                return None
            return playlist

        after: MediaPlaylist = await until(playable, "B's segments through the edge",
                                           every=0.1)
        playable_again = time.monotonic() - killed
        print(f"\nfailover: kill -> node-b carries the session {took_up:.1f} s; "
              f"kill -> a new segment plays through the edge {playable_again:.1f} s")
        # A's segments (those stored before it died), one discontinuity, B's.
        first_b = next(n for n, s in enumerate(after.segments) if s.discontinuity)
        # A's live playlist lists a segment as soon as it is cut, from memory: the last
        # one may not have reached storage when A died (lost with A, as the issue allows:
        # nothing already uploaded is lost). On a loaded machine CI saw 4 of 5 stored.
        assert first_b >= len(before.segments) - 1
        assert [s.uri for s in after.segments] == [
            f"{n:06d}.m4s" for n in range(len(after.segments))]
        assert [n for n, s in enumerate(after.segments) if s.discontinuity] == [first_b]
        assert after.segments[first_b].init_uri == f"init_{first_b:06d}.mp4"
        for segment in after.segments[:first_b]:  # A's, from storage through B
            assert await running.fetch(running.cluster.edge_url, session_id,
                                       segment.uri) == 200

        async def b_has_more() -> bool:
            playlist = await running.playlist(running.cluster.edge_url, session_id)
            return playlist is not None and len(playlist.segments) >= first_b + 4

        await until(b_has_more, "more of B's segments")
    finally:
        await stop(encoder)

    await running.api("POST", f"/courses/{running.course_id}/end-live")

    async def recorded() -> bool:
        session = await running.api("GET", f"/sessions/{session_id}/")
        return bool(session["recording_url"])

    await until(recorded, "the recording is ready")
    recording = await check_recording(running, session_id, [first_b])
    assert len(recording.segments) >= first_b + 4
    assert "node-b" in running.b.log() and "resuming after" in running.b.log()


async def test_a_class_nobody_takes_up_is_ended_by_the_control_plane(
    start_class: Callable[[int], Awaitable[Class]],
) -> None:
    grace = 6
    running = await start_class(grace)
    encoder = await publish(running.a, running.key)
    try:
        session_id = await live_with_segments(running, running.a, 4)
        running.cluster.kill(running.a)
        killed = time.monotonic()
    finally:
        await stop(encoder)

    async def ended() -> bool:
        return await running.live_session() is None

    await until(ended, "the control plane ends the class", every=0.2)
    ended_after = time.monotonic() - killed
    assert ended_after >= grace - 1  # not before the grace period (from the last beat)

    async def recorded() -> bool:
        session = await running.api("GET", f"/sessions/{session_id}/")
        return bool(session["recording_url"])

    await until(recorded, "node-b makes the recording from storage", every=0.2)
    ready_after = time.monotonic() - killed
    print(f"\nno reconnect: kill -> session ended {ended_after:.1f} s; "
          f"kill -> recording ready {ready_after:.1f} s (grace {grace} s)")
    recording = await check_recording(running, session_id, [])
    assert len(recording.segments) >= 4
    assert "making its recording from storage" in running.b.log()
