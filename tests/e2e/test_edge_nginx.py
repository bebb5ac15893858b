"""The nginx edge, run by Debian's nginx with the configuration `academia edge-config` makes.

Behind it, over real sockets: two media nodes ("alpha" and "beta"), each our HlsDelivery
in a real aiohttp server, serving real live media (tests/support/live_media.py: the
production ffmpeg command's fragmented MP4, fed one part at a time into a SessionOutput)
and a recording from a storage folder both share; and a stand-in control process that
answers the edge's playback check by the contract (a table per session and token,
counting the questions), a small API and the chat WebSocket. Each node counts the
requests that reach it: what the edge answered from its cache never shows there.

Session 7 is live on alpha, session 8 live on beta, session 9 a recording in storage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from config.loading import load_settings
from config.settings import Settings
from mediaserver.control_port import PLAYBACK_GRANT_SECONDS, PlaybackAllowed, PlaybackDecision
from mediaserver.edge.nginx_config import edge_config
from mediaserver.hls_delivery import HlsDelivery
from support.live_media import LiveFeed, LiveMedia, StoringQueue, make_live_media
from support.live_stack import free_port
from support.nginx_edge import NginxEdge, nginx_binary
from support.playback_fakes import FakeControl
from transcode.session_output import SessionOutput
from transcode.storage.local import LocalStorage

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")

SECRET = "edge-test-node-secret-0123456789"
ON_ALPHA, ON_BETA, RECORDED = 7, 8, 9
FAR_FUTURE = 4_000_000_000.0
BOUND = 20.0
CROWD = 20
# How often waiters on nginx's own cache lock look again (ngx_http_file_cache.c), seconds.
LOCK_LOOKS_AGAIN = 0.5

# Realistic tokens (base64url, as control.streaming.playback_tokens makes them), each
# distinctive enough that finding it in a log is never a coincidence.
STUDENTS = [secrets.token_urlsafe(57) for _ in range(CROWD)]
ALICE, BOB = STUDENTS[0], STUDENTS[1]
CAROL = secrets.token_urlsafe(57)  # session 8
DAVE = secrets.token_urlsafe(57)  # the recording
MALLORY = secrets.token_urlsafe(57)  # refused
NOBODY = secrets.token_urlsafe(57)  # unknown to the control plane
ALL_TOKENS = [*STUDENTS, CAROL, DAVE, MALLORY, NOBODY]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> LiveMedia:
    return make_live_media(tmp_path_factory.mktemp("edge-media"))


class StandInControl:
    """A control process as the edge sees it: the playback check by the contract
    (`answers`: an origin name, or a status), plus a small API and a chat socket."""

    def __init__(self) -> None:
        self.answers: dict[tuple[int, str], str | int] = {}
        self.checks: list[tuple[int, str]] = []
        self.bad_secrets = 0
        self.check_delay = 0.0  # seconds each check takes (a busy control process)
        self.app = web.Application()
        self.app.router.add_get("/internal/edge/playback/{sid}/{token}", self.check)
        self.app.router.add_get("/api/whoami", self.whoami)
        self.app.router.add_get("/openapi.json", self.openapi)
        self.app.router.add_get("/sessions/{sid}/chat", self.chat)

    async def check(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            self.bad_secrets += 1
            return web.Response(status=401)
        key = (int(request.match_info["sid"]), request.match_info["token"])
        self.checks.append(key)
        await asyncio.sleep(self.check_delay)
        answer = self.answers.get(key, 404)
        if isinstance(answer, str):
            return web.Response(status=204, headers={"X-Academia-Origin": answer})
        return web.Response(status=answer)

    async def whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"process": "control",
                                  "forwarded_for": request.headers.get("X-Forwarded-For"),
                                  "query": request.query_string})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response({"openapi": "3.1.0"})

    async def chat(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(f"echo {message.data}")
        return socket

    def checks_of(self, token: str) -> int:
        return sum(1 for _, t in self.checks if t == token)


@dataclass
class Node:
    """A media node: HlsDelivery in a real aiohttp server, counting what reaches it."""

    name: str
    outputs: dict[int, SessionOutput]
    hits: list[str] = field(default_factory=list)
    port: int = 0

    def hits_of(self, fragment: str) -> int:
        return sum(1 for hit in self.hits if fragment in hit)


async def start_app(app: web.Application, runners: list[web.AppRunner]) -> int:
    runner = web.AppRunner(app)
    await runner.setup()
    runners.append(runner)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return port


def node_app(node: Node, storage: LocalStorage) -> web.Application:
    decisions: dict[str, PlaybackDecision | Exception] = {
        token: PlaybackAllowed(ON_ALPHA, live=True, expires_at=FAR_FUTURE)
        for token in STUDENTS}
    decisions[CAROL] = PlaybackAllowed(ON_BETA, live=True, expires_at=FAR_FUTURE)
    decisions[DAVE] = PlaybackAllowed(RECORDED, live=False, expires_at=FAR_FUTURE)
    delivery = HlsDelivery(FakeControl(decisions), storage, live=node.outputs.get)

    @web.middleware
    async def count(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        node.hits.append(request.path_qs)
        return await handler(request)

    app = web.Application(middlewares=[count])
    delivery.add_routes(app)
    return app


@dataclass
class Stage:
    edge: NginxEdge
    control: StandInControl
    alpha: Node
    beta: Node
    feeds: dict[int, LiveFeed]
    http: aiohttp.ClientSession

    def url(self, session_id: int, token: str, path: str) -> str:
        return f"{self.edge.url}/play/{session_id}/{token}/{path}"

    async def get(self, session_id: int, token: str, path: str
                  ) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(self.url(session_id, token, path)) as resp:
            return resp.status, await resp.read(), dict(resp.headers)

    def origin_hits(self, fragment: str) -> int:
        return self.alpha.hits_of(fragment) + self.beta.hits_of(fragment)


def edge_settings(listen: int, controls: list[int], alpha: int, beta: int) -> Settings:
    settings = load_settings(environ={})
    cluster = dataclasses.replace(
        settings.cluster, node_secret=SECRET, edge_listen=f"127.0.0.1:{listen}",
        edge_control_urls=",".join(f"http://127.0.0.1:{port}" for port in controls),
        edge_media_nodes=f"alpha=http://127.0.0.1:{alpha},beta=http://127.0.0.1:{beta}")
    streaming = dataclasses.replace(settings.streaming, segment_seconds=1)
    return dataclasses.replace(settings, cluster=cluster, streaming=streaming)


async def live_feed(session_id: int, media: LiveMedia, storage: LocalStorage,
                    work: Path) -> LiveFeed:
    output = SessionOutput(session_id, StoringQueue(storage), work_dir=work,
                           segment_seconds=1.0)
    feed = LiveFeed(output, media)
    await feed.start()
    await feed.to_segment(2)
    return feed


@pytest.fixture
async def stage(tmp_path: Path, media: LiveMedia) -> AsyncIterator[Stage]:
    storage = LocalStorage(tmp_path / "storage")
    feeds = {ON_ALPHA: await live_feed(ON_ALPHA, media, storage, tmp_path / "a"),
             ON_BETA: await live_feed(ON_BETA, media, storage, tmp_path / "b")}
    recorded = await live_feed(RECORDED, media, storage, tmp_path / "r")
    await recorded.rest()
    await recorded.output.finalize(storage)

    alpha = Node("alpha", {ON_ALPHA: feeds[ON_ALPHA].output})
    beta = Node("beta", {ON_BETA: feeds[ON_BETA].output})
    control = StandInControl()
    for token in STUDENTS:
        control.answers[(ON_ALPHA, token)] = "alpha"
    control.answers[(ON_BETA, CAROL)] = "beta"
    control.answers[(RECORDED, DAVE)] = "storage"
    control.answers[(ON_ALPHA, MALLORY)] = 403

    runners: list[web.AppRunner] = []
    edge: NginxEdge | None = None
    try:
        alpha.port = await start_app(node_app(alpha, storage), runners)
        beta.port = await start_app(node_app(beta, storage), runners)
        control_port = await start_app(control.app, runners)
        # The first control process listed is down: the edge goes on to the next.
        dead_port = free_port()
        port = free_port()
        settings = edge_settings(port, [dead_port, control_port], alpha.port, beta.port)
        prefix = tmp_path / "edge"
        edge = NginxEdge(edge_config(settings, prefix), prefix, port)
        await edge.start()
        async with aiohttp.ClientSession() as http:
            yield Stage(edge, control, alpha, beta, feeds, http)
        log = edge.access_log()
        for token in ALL_TOKENS:
            assert token not in log, "a playback token in the access log"
    finally:
        if edge is not None:
            await edge.stop()
        for runner in runners:
            await runner.cleanup()


def hint(playlist: str) -> tuple[str, int, int]:
    """The preload hint's URI and the (msn, part) it names."""
    match = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(([0-9]+)\.([0-9]+)\.m4s)"',
                      playlist)
    assert match is not None, playlist
    return match[1], int(match[2]), int(match[3])


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


# -- sharing ---------------------------------------------------------------------------


async def test_two_students_fetching_one_segment_cost_one_origin_request(stage: Stage
                                                                         ) -> None:
    segment = stage.feeds[ON_ALPHA].track("sd").segment_data(1)
    init = stage.feeds[ON_ALPHA].track("sd").init_data("init_000000.mp4")
    for path, data in (("sd/000001.m4s", segment), ("sd/init_000000.mp4", init)):
        status, body, headers = await stage.get(ON_ALPHA, ALICE, path)
        assert status == 200 and body == data, (body, stage.edge.error_log())
        assert headers["X-Academia-Edge-Cache"] == "MISS"
        assert headers["Cache-Control"] == "public, max-age=86400, immutable"
        status, body, headers = await stage.get(ON_ALPHA, BOB, path)
        assert status == 200 and body == data, (body, stage.edge.error_log())
        assert headers["X-Academia-Edge-Cache"] == "HIT"
        assert stage.alpha.hits_of(path) == 1, stage.alpha.hits
    assert stage.beta.hits == []


async def test_twenty_students_asking_for_the_next_part_make_one_origin_request(
        stage: Stage) -> None:
    feed = stage.feeds[ON_ALPHA]
    coming = await feed.to_mid_segment("sd")
    status, body, _ = await stage.get(ON_ALPHA, ALICE, "sd/index.m3u8")
    assert status == 200
    uri, _, _ = hint(body.decode())
    crowd = [asyncio.create_task(stage.get(ON_ALPHA, token, f"sd/{uri}"))
             for token in STUDENTS]
    # Every student's token checked, the first request waiting at the origin, the others
    # (a moment later) waiting for it at the edge.
    await until(lambda: len(set(stage.control.checks)) == CROWD, "every token checked")
    await until(lambda: stage.alpha.hits_of(uri) == 1, "the origin asked for the part")
    # The part comes just after half a second of waiting, when nginx's own cache lock
    # would have had its waiters look (they would next look half a second later).
    await asyncio.sleep(LOCK_LOOKS_AGAIN + 0.05)
    assert not any(task.done() for task in crowd)
    answered: list[float] = []
    for task in crowd:
        task.add_done_callback(lambda _: answered.append(time.monotonic()))
    await feed.part("sd")
    answers = await asyncio.wait_for(asyncio.gather(*crowd), BOUND)
    assert all(status == 200 and body == coming.data for status, body, _ in answers)
    assert stage.alpha.hits_of(uri) == 1
    # The others are answered with the first, not when a lock would have looked again.
    assert max(answered) - min(answered) < LOCK_LOOKS_AGAIN / 2, answered


async def test_twenty_identical_blocking_reloads_make_one_origin_request(
        stage: Stage) -> None:
    feed = stage.feeds[ON_ALPHA]
    await feed.to_mid_segment("sd")
    status, body, _ = await stage.get(ON_ALPHA, ALICE, "sd/index.m3u8")
    assert status == 200
    uri, msn, part = hint(body.decode())
    query = f"_HLS_msn={msn}&_HLS_part={part}"
    path = f"sd/index.m3u8?{query}"
    crowd = [asyncio.create_task(stage.get(ON_ALPHA, token, path)) for token in STUDENTS]
    await until(lambda: len(set(stage.control.checks)) == CROWD, "every token checked")
    await until(lambda: stage.alpha.hits_of(query) == 1, "the origin holds one reload")
    await asyncio.sleep(LOCK_LOOKS_AGAIN + 0.05)
    assert not any(task.done() for task in crowd)
    answered: list[float] = []
    for task in crowd:
        task.add_done_callback(lambda _: answered.append(time.monotonic()))
    await feed.part("sd")
    answers = await asyncio.wait_for(asyncio.gather(*crowd), BOUND)
    assert max(answered) - min(answered) < LOCK_LOOKS_AGAIN / 2, answered
    bodies = {body for _, body, _ in answers}
    assert {status for status, _, _ in answers} == {200} and len(bodies) == 1
    (playlist,) = bodies
    assert f'URI="{uri}"' in playlist.decode()
    assert stage.alpha.hits_of(query) == 1
    # Relative URIs only: no playlist carries the token it was asked with.
    assert not any(token.encode() in playlist for token in ALL_TOKENS)
    # A plain reload is never kept: each goes to the origin.
    before = stage.alpha.hits_of("sd/index.m3u8")
    for token in (ALICE, BOB):
        status, body, headers = await stage.get(ON_ALPHA, token, "sd/index.m3u8")
        assert status == 200 and headers["Cache-Control"] == "no-cache"
        assert token.encode() not in body
    assert stage.alpha.hits_of("sd/index.m3u8") == before + 2


# -- the playback check ----------------------------------------------------------------


async def test_a_grant_is_renewed_behind_the_students_back(stage: Stage) -> None:
    """Once a grant's window is over, the student's next request is answered at once while
    the edge asks again in the background (all of a class's students joined together,
    and a busy control process would otherwise hold each of them every window)."""
    status, _, _ = await stage.get(ON_ALPHA, BOB, "sd/000001.m4s")
    assert status == 200 and stage.control.checks_of(BOB) == 1
    stage.control.check_delay = 2.0
    # nginx counts an answer's life in whole seconds: past the window, whatever the phase.
    await asyncio.sleep(PLAYBACK_GRANT_SECONDS + 1.2)
    asked = time.monotonic()
    status, _, _ = await stage.get(ON_ALPHA, BOB, "sd/000001.m4s")
    answered = time.monotonic() - asked
    assert status == 200
    await until(lambda: stage.control.checks_of(BOB) == 2, "the grant asked for again")
    assert answered < stage.control.check_delay / 2, answered
    # Renewed once the background check is answered: the next request asks nothing.
    await asyncio.sleep(stage.control.check_delay + 0.1)
    status, _, _ = await stage.get(ON_ALPHA, BOB, "sd/000001.m4s")
    assert status == 200 and stage.control.checks_of(BOB) == 2



async def test_refused_tokens_are_refused_at_the_edge_and_a_revocation_within_seconds(
        stage: Stage) -> None:
    status, body, headers = await stage.get(ON_ALPHA, MALLORY, "sd/000001.m4s")
    assert status == 403 and b'"forbidden"' in body
    assert headers["Cache-Control"] == "no-store"
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, body, _ = await stage.get(ON_ALPHA, NOBODY, "sd/000001.m4s")
    assert status == 404 and b'"not_found"' in body
    # Neither reached a media node.
    assert stage.alpha.hits == [] and stage.beta.hits == []

    # Allowed: many requests within the grant's window are one question.
    for _ in range(5):
        status, _, _ = await stage.get(ON_ALPHA, ALICE, "sd/000001.m4s")
        assert status == 200
    assert stage.control.checks_of(ALICE) == 1
    assert stage.control.bad_secrets == 0

    # Access ends: refused within the grant's window, even for media the edge holds.
    stage.control.answers[(ON_ALPHA, ALICE)] = 403
    ended = time.monotonic()
    while True:
        status, body, _ = await stage.get(ON_ALPHA, ALICE, "sd/000001.m4s")
        if status == 403:
            break
        assert status == 200
        assert time.monotonic() - ended < PLAYBACK_GRANT_SECONDS + 1.5
        await asyncio.sleep(0.2)
    # Bob still plays, from the cache.
    status, _, headers = await stage.get(ON_ALPHA, BOB, "sd/000001.m4s")
    assert status == 200 and headers["X-Academia-Edge-Cache"] == "HIT"

    # The control plane cannot tell: 503, never cached.
    stage.control.answers[(ON_ALPHA, STUDENTS[5])] = 503
    status, body, headers = await stage.get(ON_ALPHA, STUDENTS[5], "sd/000001.m4s")
    assert status == 503 and b'"control_unavailable"' in body
    assert headers["Cache-Control"] == "no-store"
    stage.control.answers[(ON_ALPHA, STUDENTS[5])] = "alpha"
    status, _, _ = await stage.get(ON_ALPHA, STUDENTS[5], "sd/000001.m4s")
    assert status == 200


# -- routing ---------------------------------------------------------------------------


async def test_each_session_goes_to_the_node_that_carries_it(stage: Stage) -> None:
    for path in ("master.m3u8", "sd/index.m3u8", "audio/index.m3u8", "sd/000000.m4s"):
        status, body, _ = await stage.get(ON_BETA, CAROL, path)
        assert status == 200, (path, body)
        assert CAROL.encode() not in body
        assert stage.beta.hits_of(f"/play/{ON_BETA}/{CAROL}/{path}") == 1
    assert stage.alpha.hits == []
    status, body, _ = await stage.get(ON_ALPHA, ALICE, "master.m3u8")
    assert status == 200 and ALICE.encode() not in body
    assert stage.alpha.hits_of("master.m3u8") == 1

    # A recording: from storage, through any node, and shared like live media.
    status, playlist, _ = await stage.get(RECORDED, DAVE, "sd/index.m3u8")
    assert status == 200 and b"#EXT-X-ENDLIST" in playlist
    assert DAVE.encode() not in playlist
    for _ in range(2):
        status, body, _ = await stage.get(RECORDED, DAVE, "sd/000000.m4s")
        assert status == 200 and body
    assert stage.origin_hits(f"/play/{RECORDED}/{DAVE}/sd/000000.m4s") == 1

    # A node this edge does not know: nowhere to go.
    stage.control.answers[(ON_ALPHA, STUDENTS[3])] = "gamma"
    status, _, _ = await stage.get(ON_ALPHA, STUDENTS[3], "sd/000000.m4s")
    assert status == 502


async def test_shapes_the_nodes_do_not_serve_are_not_found_at_the_edge(stage: Stage
                                                                        ) -> None:
    for path in ("sd/evil.txt", "sd/000001.m4s.bak", "../../openapi.json", "sd"):
        status, _, _ = await stage.get(ON_ALPHA, ALICE, path)
        assert status == 404, path
    async with stage.http.get(f"{stage.edge.url}/play/7/a%2Fb/master.m3u8") as resp:
        assert resp.status == 404
    assert stage.control.checks == [] and stage.alpha.hits == []


# -- the control plane -----------------------------------------------------------------


async def test_the_api_and_the_chat_socket_reach_the_control_processes(stage: Stage
                                                                        ) -> None:
    async with stage.http.get(f"{stage.edge.url}/api/whoami?x=1") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
    assert body == {"process": "control", "forwarded_for": "127.0.0.1", "query": "x=1"}
    async with stage.http.get(f"{stage.edge.url}/openapi.json") as resp:
        assert resp.status == 200 and (await resp.json())["openapi"] == "3.1.0"
    ticket = secrets.token_urlsafe(24)
    async with stage.http.ws_connect(f"{stage.edge.url}/sessions/5/chat?ticket={ticket}"
                                     ) as socket:
        await socket.send_str("hello")
        message = await asyncio.wait_for(socket.receive(), BOUND)
        assert message.data == "echo hello"
    # The playback check is between processes: the public cannot ask it through the edge.
    async with stage.http.get(f"{stage.edge.url}/internal/edge/playback/7/{ALICE}") as resp:
        assert resp.status == 404
    assert stage.control.checks == []
    assert ticket not in stage.edge.access_log()


async def test_the_access_log_names_the_path_and_cache_status_never_the_token(
        stage: Stage) -> None:
    for token in (ALICE, BOB):
        status, _, _ = await stage.get(ON_ALPHA, token, "sd/000000.m4s")
        assert status == 200
    status, _, _ = await stage.get(ON_ALPHA, MALLORY, "sd/000000.m4s")
    assert status == 403
    await stage.edge.stop()  # its log is complete once it stopped
    log = stage.edge.access_log().splitlines()
    served = [line for line in log if f'"GET /play/{ON_ALPHA}/-/sd/000000.m4s"' in line]
    assert len(served) == 3, log
    assert "cache=MISS origin=alpha" in served[0] and " 200 " in served[0]
    assert "cache=HIT origin=alpha" in served[1]
    assert " 403 " in served[2]
    assert not any(token in "\n".join(log) for token in ALL_TOKENS)


async def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    settings = edge_settings(free_port(), [free_port(), free_port()], free_port(),
                             free_port())
    prefix = tmp_path / "edge"
    status, said = await NginxEdge(edge_config(settings, prefix), prefix, 0).check()
    assert status == 0, said
    assert "test is successful" in said
