"""Past one machine, with real processes: two control processes and two media nodes
(`academia serve --role control|media`) on one PostgreSQL database, one Redis and one S3
(moto's server), and the nginx edge `academia edge-config` makes in front of them.

- Two classes published to different media nodes play through the edge for students
  who signed in through either control process; the registry says which node carries
  which class, and the edge sends each class's requests there.
- A chat message posted through one control process reaches a student connected to the
  other within a second.
- A student removed from a course through one control process is refused at the edge on
  the next playlist request, within seconds, while the other student plays on.
- Redis goes away: the classes keep streaming and playing, chat keeps working within each
  process; Redis back, chat crosses again; nothing is lost from the database. A control
  process goes away: the edge sends everything to the other one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.cluster_processes import ADMIN_PASSWORD, Cluster, ClusterProcess, create_database
from support.live_stack import decode, media_playlist_uris, media_segments, publish_ffmpeg
from support.nginx_edge import nginx_binary
from support.redis_server import (
    RedisServer,
    kill_redis,
    redis_available,
    start_redis,
    stop_redis,
)
from support.s3_server import S3Server, s3_server  # noqa: F401

pytestmark = [
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]

PASSWORD = "cluster-pass-1"


class Http:
    """JSON calls to one process (or the edge) as one signed-in person."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str | None = None):
        self.http = http
        self.base = base
        self.token = token

    def at(self, base: str) -> Http:
        return Http(self.http, base, self.token)

    async def call(self, method: str, path: str, body: Any = None, *,
                   expect: int | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + path, json=body,
                                     headers=headers) as response:
            answer = await response.json() if response.content_length != 0 else None
            if expect is not None:
                assert response.status == expect, (method, path, response.status, answer)
            elif response.status >= 400:
                raise AssertionError(f"{method} {path}: {response.status} {answer}")
            return answer

    async def sign_in(self, username: str, password: str) -> Http:
        answer = await self.call("POST", "/auth/login",
                                 {"username": username, "password": password})
        return Http(self.http, self.base, answer["token"])


async def until(check: Callable[[], Awaitable[Any]], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {within} s: {what}")
        await asyncio.sleep(0.25)


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as response:
        return response.status, await response.read()


async def plays(http: aiohttp.ClientSession, master_url: str) -> dict[str, Any]:
    """As a player would: the master, a media playlist, its newest segment with its
    init, decoded."""
    status, master = await fetch(http, master_url)
    assert status == 200, (master_url, status, master[:200])
    media_url = master_url.rsplit("/", 1)[0] + "/" + media_playlist_uris(master.decode())[0]
    status, playlist = await fetch(http, media_url)
    assert status == 200, (media_url, status)
    segment = media_segments(playlist.decode())[-1]
    assert segment.init is not None
    base = media_url.rsplit("/", 1)[0] + "/"
    _, init = await fetch(http, base + segment.init)
    status, body = await fetch(http, base + segment.uri)
    assert status == 200
    shown: dict[str, Any] = decode(init + body)
    return shown


@pytest.fixture
async def cluster(tmp_path: Path, postgres_url: str, redis_server: RedisServer,
                  s3_server: S3Server) -> AsyncIterator[Cluster]:  # noqa: F811
    database_url = await create_database(postgres_url, f"cluster_{time.monotonic_ns()}")
    cluster = Cluster(tmp_path / "cluster", database_url, redis_server.url, s3_server.endpoint,
                      bucket=f"cluster-{time.monotonic_ns()}",
                      extra_env={"ACADEMIA_TRANSCODE_MODE": "passthrough",
                                 "ACADEMIA_SEGMENT_SECONDS": "1"})
    try:
        await cluster.migrate()
        control_a = await cluster.start_control("control-a")
        control_b = await cluster.start_control("control-b")
        await cluster.start_media("media-a", control_a)
        await cluster.start_media("media-b", control_b)
        await cluster.start_edge()
        yield cluster
    finally:
        await cluster.close()


def named(cluster: Cluster, name: str) -> ClusterProcess:
    return next(p for p in cluster.processes if p.name == name)


async def two_classes(http: aiohttp.ClientSession, cluster: Cluster
                      ) -> tuple[Http, list[int], list[str], list[Http]]:
    """Through the edge, as an admin: a teacher, two courses with a stream key each, and
    two students enrolled in both. Returns the admin, the course ids, the keys, and the
    students, ana signed in through control-a and ben through control-b."""
    admin = await Http(http, cluster.edge_url).sign_in("admin", ADMIN_PASSWORD)
    teacher = await admin.call("POST", "/users/", {"username": "tess", "password": PASSWORD,
                                                  "role": "teacher"})
    category = await admin.call("POST", "/categories/", {"name": "Cluster"})
    courses, keys = [], []
    for title in ("Algebra", "Botany"):
        course = await admin.call("POST", "/courses/", {
            "title": title, "category_id": category["id"], "teacher_id": teacher["id"]})
        # Private: only the enrolled may watch, so a removal takes their access away.
        await admin.call("PATCH", f"/courses/{course['id']}/", {"access_level": "private"})
        keys.append((await admin.call("POST", f"/courses/{course['id']}/stream-keys", {}))["key"])
        courses.append(course["id"])
    students = []
    for name, via in (("ana", "control-a"), ("ben", "control-b")):
        user = await admin.call("POST", "/users/", {"username": name, "password": PASSWORD,
                                                   "role": "student"})
        for course_id in courses:
            await admin.call("POST", f"/courses/{course_id}/enroll-student",
                             {"student_id": user["id"]})
        students.append(await Http(http, named(cluster, via).url).sign_in(name, PASSWORD))
    return admin, courses, keys, students


async def live_session(who: Http, course_id: int) -> int:
    async def live() -> int | None:
        status = await who.call("GET", f"/courses/{course_id}/live-status")
        session_id = status.get("session_id") if status.get("is_live") else None
        return int(session_id) if session_id else None

    found: int = await until(live, within=30, what=f"course {course_id} live")
    return found


async def test_two_classes_on_two_nodes_play_through_the_edge_with_shared_chat_and_grants(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as http:
        admin, courses, keys, (ana, ben) = await two_classes(http, cluster)
        publishers = [
            await publish_ffmpeg(named(cluster, node).rtmp_url(key), seconds=90,
                                 size="640x360", fps=15, gop_seconds=1)
            for node, key in (("media-a", keys[0]), ("media-b", keys[1]))
        ]
        try:
            sessions = [await live_session(admin, course_id) for course_id in courses]

            # The registry knows which node carries which class (heartbeats).
            async def carried() -> bool:
                listing = await admin.call("GET", "/nodes/")
                nodes = {n["name"]: n for n in listing["results"]}
                return (sessions[0] in nodes["media-a"]["session_ids"]
                        and sessions[1] in nodes["media-b"]["session_ids"])

            await until(carried, within=20, what="each node reporting its class")

            # Both students, signed in through different control processes, play both
            # classes through the edge (their grants name the edge's address).
            for student in (ana, ben):
                for session_id in sessions:
                    grant = await student.call("GET", f"/sessions/{session_id}/playback")
                    assert grant["url"].startswith(cluster.edge_url + "/play/"), grant

                    async def decodes(url: str = grant["url"]) -> dict[str, Any] | None:
                        try:
                            return await plays(http, url)
                        except AssertionError:
                            return None

                    shown = await until(decodes, within=30, what="a segment through the edge")
                    assert shown["frames"] > 0 and shown["size"] == (640, 360), shown
            edge = cluster.edge
            assert edge is not None
            log = edge.access_log()
            for session_id, node in zip(sessions, ("media-a", "media-b"), strict=True):
                assert f"/play/{session_id}/-/" in log
                assert node in log  # the origin column names the node that served it
            for student in (ana, ben):
                assert student.token is not None and student.token not in log

            # Chat: ana on control-a, ben on control-b, one class's chat.
            ws_a = await chat(http, ana, sessions[0])
            ws_b = await chat(http, ben, sessions[0])
            sent = time.monotonic()
            await ws_a.send_json({"type": "message", "text": "hello from a"})
            frame = await receive_until(ws_b, lambda f: f.get("text") == "hello from a")
            assert time.monotonic() - sent < 1.0, "the message took over a second"
            assert frame["type"] == "message"
            await ws_a.close()
            await ws_b.close()

            # ben is removed from the first course through control-a: the edge refuses
            # his next playlist request within seconds; ana plays on.
            ben_grant = await ben.call("GET", f"/sessions/{sessions[0]}/playback")
            ana_grant = await ana.call("GET", f"/sessions/{sessions[0]}/playback")
            ben_id = (await ben.call("GET", "/auth/me"))["id"]
            removed_at = time.monotonic()
            await admin.at(named(cluster, "control-a").url).call(
                "POST", f"/courses/{courses[0]}/remove-student", {"student_id": ben_id})

            async def refused() -> bool:
                status, _ = await fetch(http, ben_grant["url"])
                return status == 403

            await until(refused, within=15, what="the edge refusing a removed student")
            assert time.monotonic() - removed_at < 15
            assert (await plays(http, ana_grant["url"]))["frames"] > 0
        finally:
            for publisher in publishers:
                if publisher.returncode is None:
                    publisher.kill()
                    await publisher.wait()


async def chat(http: aiohttp.ClientSession, who: Http,
               session_id: int) -> aiohttp.ClientWebSocketResponse:
    ticket = await who.call("POST", f"/sessions/{session_id}/chat-ticket", expect=201)
    ws = await http.ws_connect(
        f"{who.base}/sessions/{session_id}/chat?ticket={ticket['ticket']}")
    return ws


async def receive_until(ws: aiohttp.ClientWebSocketResponse,
                        found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=10)
        assert isinstance(frame, dict)
        if found(frame):
            return frame


async def test_redis_or_a_control_process_away_classes_go_on_and_chat_comes_back(
    cluster: Cluster, redis_server: RedisServer, tmp_path: Path,
) -> None:
    async with aiohttp.ClientSession() as http:
        admin, courses, keys, (ana, ben) = await two_classes(http, cluster)
        publisher = await publish_ffmpeg(named(cluster, "media-a").rtmp_url(keys[0]),
                                         seconds=120, size="640x360", fps=15, gop_seconds=1)
        try:
            session_id = await live_session(admin, courses[0])
            grant = await ana.call("GET", f"/sessions/{session_id}/playback")

            async def decodes() -> dict[str, Any] | None:
                try:
                    return await plays(http, grant["url"])
                except AssertionError:
                    return None

            await until(decodes, within=30, what="the class through the edge")

            # Redis goes away.
            kill_redis(redis_server)
            ws_a = await chat(http, ana, session_id)
            await ws_a.send_json({"type": "message", "text": "while redis is away"})
            echo = await receive_until(ws_a, lambda f: f.get("text") == "while redis is away")
            assert echo["type"] == "message"
            # The class goes on: new media keeps arriving through the edge.
            first = await plays(http, grant["url"])
            await asyncio.sleep(3)
            assert (await plays(http, grant["url"]))["frames"] > 0 and first["frames"] > 0

            # Redis comes back on its port: chat crosses processes again.
            restarted = start_redis(tmp_path / "redis-again", port=redis_server.port)
            try:
                ws_b = await chat(http, ben, session_id)

                async def crosses() -> bool:
                    await ws_a.send_json({"type": "message", "text": "redis is back"})
                    try:
                        await asyncio.wait_for(receive_until(
                            ws_b, lambda f: f.get("text") == "redis is back"), 1.5)
                    except TimeoutError:
                        return False
                    return True

                await until(crosses, within=30, what="chat crossing again after Redis")
                await ws_b.close()
            finally:
                stop_redis(restarted)
            await ws_a.close()

            # Nothing was lost from the database: a chat opened through the other control
            # process starts with the history, the message sent while Redis was away too.
            ws_c = await chat(http, ben, session_id)
            seen: set[Any] = set()
            wanted = {"while redis is away", "redis is back"}

            def both(frame: dict[str, Any]) -> bool:
                seen.add(frame.get("text"))
                return wanted <= seen

            await receive_until(ws_c, both)
            await ws_c.close()

            # control-a goes away: the edge sends everything to control-b; the class
            # (whose node asks control-a) keeps playing from what it has.
            await cluster.stop(named(cluster, "control-a"))
            grant_again = await Http(http, cluster.edge_url, ben.token).call(
                "GET", f"/sessions/{session_id}/playback")
            assert (await plays(http, grant_again["url"]))["frames"] > 0
        finally:
            if publisher.returncode is None:
                publisher.kill()
                await publisher.wait()
