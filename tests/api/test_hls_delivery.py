"""HLS delivery behind playback tokens: bytes, headers, storage prefixes, refusals, caching.

The app under test is HlsDelivery over a fake control port (answers per token, counts its
calls) and the real LocalStorage in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientPayloadError, web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler

from mediaserver.control_port import (
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
    PublishDecision,
)
from mediaserver.hls_delivery import HlsDelivery, RangeNotSatisfiable, parse_range
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import add_metrics_route
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage

LIVE_SID = 7
ENDED_SID = 8
FAR_FUTURE = 4_000_000_000.0

MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nsd/index.m3u8\n"
LIVE_INDEX = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n00041.ts\n#EXTINF:2.0,\n00042.ts\n"
VOD_INDEX = LIVE_INDEX + b"#EXT-X-ENDLIST\n"
SEGMENT = bytes(range(256)) * 700  # ~180 KB
MP4 = os.urandom(3 * (1 << 20) + 12345)  # several storage chunks


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeControl:
    """Answers authorize_playback from a table of token -> answer, counting calls."""

    def __init__(self, answers: dict[str, PlaybackDecision | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[int, str]] = []
        self.gate: asyncio.Event | None = None

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        self.calls.append((session_id, token))
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.get(token, PlaybackRefused("bad_token"))
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, PlaybackAllowed) and answer.session_id != session_id:
            return PlaybackRefused("wrong_session")
        return answer

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        raise NotImplementedError

    async def session_goes_live(self, course_id: int) -> int:
        raise NotImplementedError

    async def end_session(self, course_id: int) -> None:
        raise NotImplementedError

    async def recording_ready(self, session_id: int) -> None:
        raise NotImplementedError


class SpyStorage(LocalStorage):
    """LocalStorage that remembers every key it was asked to read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read_keys: list[str] = []
        self.body_reads: list[str] = []
        self.fail = False

    def _touch(self, key: str) -> None:
        self.read_keys.append(key)
        if self.fail:
            raise StorageError("storage is down")

    async def get(self, key: str) -> bytes | None:
        self._touch(key)
        self.body_reads.append(key)
        return await super().get(key)

    async def size(self, key: str) -> int | None:
        self._touch(key)
        return await super().size(key)

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        self._touch(key)
        self.body_reads.append(key)
        async for chunk in super().stream(key, chunk_size):
            yield chunk


class RangedStorage(SpyStorage):
    """Records range reads too."""

    def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        self._touch(key)
        return super().stream_range(key, start, length, chunk_size)


STORAGE = web.AppKey("storage", SpyStorage)

Make = Callable[..., Awaitable[tuple[TestClient[web.Request, web.Application], FakeControl]]]


def tokens() -> dict[str, PlaybackDecision | Exception]:
    return {
        "live-ok": PlaybackAllowed(LIVE_SID, live=True, expires_at=FAR_FUTURE),
        "ended-ok": PlaybackAllowed(ENDED_SID, live=False, expires_at=FAR_FUTURE),
        "expired": PlaybackRefused("expired"),
        "not-enrolled": PlaybackRefused("not_allowed"),
        "down": ControlUnavailable("database is down"),
    }


async def fill(storage: LocalStorage) -> None:
    await storage.put(f"live/{LIVE_SID}/master.m3u8", MASTER, "x")
    await storage.put(f"live/{LIVE_SID}/sd/index.m3u8", LIVE_INDEX, "x")
    await storage.put(f"live/{LIVE_SID}/sd/00042.ts", SEGMENT, "x")
    # The ended session has different bytes under live/ (left over) and recordings/: only
    # the recording may be served.
    await storage.put(f"live/{ENDED_SID}/sd/index.m3u8", b"stale live playlist", "x")
    await storage.put(f"recordings/{ENDED_SID}/master.m3u8", MASTER, "x")
    await storage.put(f"recordings/{ENDED_SID}/sd/index.m3u8", VOD_INDEX, "x")
    await storage.put(f"recordings/{ENDED_SID}/sd/00042.ts", SEGMENT[::-1], "x")
    await storage.put(f"recordings/{ENDED_SID}/recording.mp4", MP4, "x")
    await storage.put(f"recordings/{LIVE_SID}/recording.mp4", b"old take", "x")
    await storage.put("secret.txt", b"not media", "x")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    tmp_path: Path,
    clock: FakeClock,
) -> Make:
    async def build(
        storage_type: type[SpyStorage] = SpyStorage,
        answers: dict[str, PlaybackDecision | Exception] | None = None,
    ) -> tuple[TestClient[web.Request, web.Application], FakeControl]:
        storage = storage_type(tmp_path / "media")
        await fill(storage)
        control = FakeControl(tokens() if answers is None else answers)
        app = web.Application()
        app[STORAGE] = storage
        HlsDelivery(control, storage, clock=clock).add_routes(app)
        return await aiohttp_client(app), control

    return build


def spy(client: TestClient[web.Request, web.Application]) -> SpyStorage:
    storage = client.app[STORAGE]
    assert isinstance(storage, SpyStorage)
    return storage


async def raw_status(client: TestClient[web.Request, web.Application], target: str) -> int:
    """Send `target` byte for byte (no client-side normalisation of `..` or `%2f`)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_live_playlists_and_segments(make: Make) -> None:
    client, _ = await make()
    resp = await client.get(f"/play/{LIVE_SID}/live-ok/master.m3u8")
    assert resp.status == 200
    assert await resp.read() == MASTER
    assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/index.m3u8")
    assert resp.status == 200
    assert await resp.read() == LIVE_INDEX
    assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/00042.ts")
    assert resp.status == 200
    assert await resp.read() == SEGMENT
    assert resp.headers["Content-Type"] == "video/mp2t"
    assert resp.headers["Cache-Control"] == "private, max-age=86400, immutable"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert spy(client).read_keys == [
        f"live/{LIVE_SID}/master.m3u8",
        f"live/{LIVE_SID}/sd/index.m3u8",
        f"live/{LIVE_SID}/sd/00042.ts",
    ]


async def test_ended_session_is_served_from_recordings(make: Make) -> None:
    client, _ = await make()
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/index.m3u8")
    assert resp.status == 200
    assert await resp.read() == VOD_INDEX
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/00042.ts")
    assert await resp.read() == SEGMENT[::-1]
    assert spy(client).read_keys == [
        f"recordings/{ENDED_SID}/sd/index.m3u8",
        f"recordings/{ENDED_SID}/sd/00042.ts",
    ]


async def test_recording_mp4_is_streamed_whole(make: Make) -> None:
    client, _ = await make()
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4")
    assert resp.status == 200
    assert await resp.read() == MP4
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["Content-Length"] == str(len(MP4))
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="session-{ENDED_SID}.mp4"'
    )
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Accept-Ranges"] == "bytes"


async def test_no_shared_cache_may_keep_token_gated_media(make: Make) -> None:
    """A shared cache (CDN, proxy) keys by URL and cannot check the token: were media
    `public`, a removed student's cached URLs would keep playing from it. Only the viewer's
    own browser may keep a copy; playlists are revalidated with the origin every time."""
    client, _ = await make()
    await spy(client).put(f"recordings/{ENDED_SID}/poster.jpg", b"\xff\xd8jpeg", "x")
    answers = [
        await client.get(f"/play/{LIVE_SID}/live-ok/sd/00042.ts"),
        await client.head(f"/play/{LIVE_SID}/live-ok/sd/00042.ts"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/sd/00042.ts"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4"),
        await client.head(f"/play/{ENDED_SID}/ended-ok/recording.mp4"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4",
                         headers={"Range": "bytes=0-3"}),
        await client.get(f"/play/{ENDED_SID}/ended-ok/poster.jpg"),
    ]
    for resp in answers:
        assert resp.status in (200, 206), resp.url
        directives = {d.strip().split("=")[0] for d in resp.headers["Cache-Control"].split(",")}
        assert "private" in directives and "public" not in directives, resp.url
    for path in ("master.m3u8", "sd/index.m3u8"):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{path}")
        assert resp.headers["Cache-Control"] == "no-cache", path


async def test_recording_is_not_served_while_live(make: Make) -> None:
    client, _ = await make()
    resp = await client.get(f"/play/{LIVE_SID}/live-ok/recording.mp4")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert spy(client).read_keys == []


async def test_range_requests_on_the_recording(make: Make) -> None:
    client, _ = await make(RangedStorage)
    url = f"/play/{ENDED_SID}/ended-ok/recording.mp4"
    resp = await client.get(url, headers={"Range": "bytes=100-2000199"})
    assert resp.status == 206
    assert await resp.read() == MP4[100:2000200]
    assert resp.headers["Content-Range"] == f"bytes 100-2000199/{len(MP4)}"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Length"] == "2000100"

    resp = await client.get(url, headers={"Range": "bytes=-10"})
    assert resp.status == 206
    assert await resp.read() == MP4[-10:]

    resp = await client.get(url, headers={"Range": f"bytes={len(MP4) - 5}-"})
    assert resp.status == 206
    assert await resp.read() == MP4[-5:]

    resp = await client.get(url, headers={"Range": f"bytes={len(MP4)}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(MP4)}"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"

    resp = await client.get(url)
    assert resp.status == 200
    assert await resp.read() == MP4


def test_parse_range() -> None:
    assert parse_range("bytes=0-0", 10) is not None
    r = parse_range("bytes=2-", 10)
    assert r is not None and (r.start, r.end) == (2, 9)
    r = parse_range("bytes=5-100", 10)
    assert r is not None and (r.start, r.end, r.length) == (5, 9, 5)
    r = parse_range("bytes=-100", 10)
    assert r is not None and (r.start, r.end) == (0, 9)
    assert parse_range("bytes=0-1,3-4", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range("bytes=-", 10) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=12-20", 10)


async def test_head_answers_headers_only(make: Make) -> None:
    client, _ = await make()
    resp = await client.head(f"/play/{LIVE_SID}/live-ok/sd/00042.ts")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(SEGMENT))
    assert resp.headers["Content-Type"] == "video/mp2t"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert await resp.read() == b""
    resp = await client.head(f"/play/{ENDED_SID}/ended-ok/recording.mp4")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(MP4))
    assert await resp.read() == b""
    resp = await client.head(f"/play/{LIVE_SID}/live-ok/sd/00999.ts")
    assert resp.status == 404
    # HEAD learns sizes, never bytes.
    assert spy(client).body_reads == []


async def test_options_preflight(make: Make) -> None:
    client, control = await make()
    resp = await client.options(
        f"/play/{LIVE_SID}/anything/sd/00042.ts",
        headers={"Origin": "https://school.example", "Access-Control-Request-Method": "GET"},
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "OPTIONS"}
    assert "range" in resp.headers["Access-Control-Allow-Headers"].lower()
    assert control.calls == []


@pytest.mark.parametrize(
    ("token", "code"),
    [("expired", "expired"), ("not-enrolled", "not_allowed"), ("nonsense", "bad_token")],
)
async def test_refusals_are_403_with_the_reason(make: Make, token: str, code: str) -> None:
    client, control = await make()
    resp = await client.get(f"/play/{LIVE_SID}/{token}/master.m3u8")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == code
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert control.calls == [(LIVE_SID, token)]
    assert spy(client).read_keys == []


async def test_a_token_for_another_session_is_refused_by_the_control_port(make: Make) -> None:
    client, control = await make()
    resp = await client.get(f"/play/{ENDED_SID}/live-ok/master.m3u8")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "wrong_session"
    assert control.calls == [(ENDED_SID, "live-ok")]
    assert spy(client).read_keys == []


async def test_a_grant_for_another_session_is_not_trusted(make: Make) -> None:
    # A broken control port answering for the wrong session must not open another prefix.
    answers: dict[str, PlaybackDecision | Exception] = {
        "odd": PlaybackAllowed(ENDED_SID, live=False, expires_at=FAR_FUTURE)
    }
    client, control = await make(answers=answers)
    control.answers = answers

    async def wrong(session_id: int, token: str) -> PlaybackDecision:
        return PlaybackAllowed(ENDED_SID, live=False, expires_at=FAR_FUTURE)

    control.authorize_playback = wrong  # type: ignore[method-assign]
    resp = await client.get(f"/play/{LIVE_SID}/odd/recording.mp4")
    assert resp.status == 403
    assert spy(client).read_keys == []


async def test_missing_objects_are_404_json_with_cors(make: Make) -> None:
    client, _ = await make()
    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/00999.ts")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await client.get(f"/play/{LIVE_SID}/live-ok/hd/index.m3u8")
    assert resp.status == 404


@pytest.mark.parametrize(
    "path",
    ["secret.txt", "sd/index.m3u8x", "SD/index.m3u8", "sd/4.ts.bak", "sd/x.ts", "a/b/c.ts",
     "recording.mp4/x", "master.m3u8%00", "sd/%C2%B2.ts"],
)
async def test_other_paths_are_404_without_asking_anyone(make: Make, path: str) -> None:
    client, control = await make()
    status = await raw_status(client, f"/play/{LIVE_SID}/live-ok/{path}")
    assert status == 404
    assert control.calls == []
    assert spy(client).read_keys == []


@pytest.mark.parametrize(
    "target",
    [
        f"/play/{LIVE_SID}/live-ok/..%2f..%2fsecret.txt",
        f"/play/{LIVE_SID}/live-ok/..%2F{ENDED_SID}%2Frecording.mp4",
        f"/play/{LIVE_SID}/live-ok/sd%2f..%2f..%2f{ENDED_SID}%2fsd%2f00042.ts",
        f"/play/{LIVE_SID}/live-ok/../../x",
        f"/play/{LIVE_SID}/live-ok/../../../recordings/{ENDED_SID}/recording.mp4",
        f"/play/{LIVE_SID}/live-ok/sd/..%2f..%2f..%2f..%2fsecret.txt",
        f"/play/{LIVE_SID}/live-ok/%2e%2e/%2e%2e/secret.txt",
        f"/play/{LIVE_SID}%2flive-ok/x/master.m3u8",
        f"/play/..%2f{ENDED_SID}/ended-ok/recording.mp4",
    ],
)
async def test_path_traversal_never_leaves_the_prefix(make: Make, target: str) -> None:
    client, _ = await make()
    status = await raw_status(client, target)
    assert status in (403, 404)
    storage = spy(client)
    assert all(k.startswith(f"live/{LIVE_SID}/") for k in storage.read_keys), storage.read_keys


async def test_grants_are_cached_per_session_and_token(make: Make, clock: FakeClock) -> None:
    client, control = await make()
    for _ in range(20):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/00042.ts")
        assert resp.status == 200
        await resp.read()
    assert control.calls == [(LIVE_SID, "live-ok")]

    clock.now += 4.9
    assert (await client.get(f"/play/{LIVE_SID}/live-ok/master.m3u8")).status == 200
    assert len(control.calls) == 1
    clock.now += 0.2  # past the 5 s cache lifetime: asked again
    assert (await client.get(f"/play/{LIVE_SID}/live-ok/master.m3u8")).status == 200
    assert len(control.calls) == 2

    # Another token, or the same token for another session, is another question.
    await client.get(f"/play/{ENDED_SID}/ended-ok/master.m3u8")
    await client.get(f"/play/{ENDED_SID}/live-ok/master.m3u8")
    assert len(control.calls) == 4


async def test_grant_cache_ends_with_the_grant(make: Make, clock: FakeClock) -> None:
    answers: dict[str, PlaybackDecision | Exception] = {
        "short": PlaybackAllowed(LIVE_SID, live=True, expires_at=clock.now + 1.0)
    }
    client, control = await make(answers=answers)
    assert (await client.get(f"/play/{LIVE_SID}/short/master.m3u8")).status == 200
    assert (await client.get(f"/play/{LIVE_SID}/short/master.m3u8")).status == 200
    assert len(control.calls) == 1
    clock.now += 1.5
    control.answers["short"] = PlaybackRefused("expired")
    resp = await client.get(f"/play/{LIVE_SID}/short/master.m3u8")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "expired"
    assert len(control.calls) == 2


async def test_refusals_are_cached_one_second_at_most(make: Make, clock: FakeClock) -> None:
    client, control = await make()
    assert (await client.get(f"/play/{LIVE_SID}/late/master.m3u8")).status == 403
    control.answers["late"] = PlaybackAllowed(LIVE_SID, live=True, expires_at=FAR_FUTURE)
    clock.now += 1.01
    assert (await client.get(f"/play/{LIVE_SID}/late/master.m3u8")).status == 200
    assert len(control.calls) == 2


async def test_parallel_requests_share_one_question(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    tmp_path: Path,
) -> None:
    storage = SpyStorage(tmp_path / "media")
    await fill(storage)
    control = FakeControl(tokens())
    control.gate = asyncio.Event()
    arrived = 0
    all_arrived = asyncio.Event()

    @web.middleware
    async def count_arrivals(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Runs straight on into the handler, which stops only once it waits on the control
        # port: when the 8th has arrived, all 8 are waiting for their answer.
        nonlocal arrived
        arrived += 1
        if arrived == 8:
            all_arrived.set()
        return await handler(request)

    app = web.Application(middlewares=[count_arrivals])
    HlsDelivery(control, storage).add_routes(app)
    client = await aiohttp_client(app)

    async def fetch() -> int:
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/00042.ts")
        await resp.read()
        return resp.status

    fetches = [asyncio.create_task(fetch()) for _ in range(8)]
    await all_arrived.wait()
    control.gate.set()
    assert await asyncio.gather(*fetches) == [200] * 8
    assert len(control.calls) == 1


async def test_control_unavailable_is_503_and_not_cached(make: Make) -> None:
    client, control = await make()
    resp = await client.get(f"/play/{LIVE_SID}/down/master.m3u8")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "control_unavailable"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    control.answers["down"] = PlaybackAllowed(LIVE_SID, live=True, expires_at=FAR_FUTURE)
    assert (await client.get(f"/play/{LIVE_SID}/down/master.m3u8")).status == 200
    assert len(control.calls) == 2


async def test_storage_errors_are_503(make: Make) -> None:
    client, _ = await make()
    spy(client).fail = True
    for path in ("master.m3u8", "sd/00042.ts"):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{path}")
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "storage_unavailable"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4")
    assert resp.status == 503


class FailingMidwayStorage(SpyStorage):
    """Streams the first chunk of an object, then loses the storage."""

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        async for chunk in super().stream(key, chunk_size):
            yield chunk
            raise StorageError("connection to storage lost")


async def test_storage_failure_mid_download_cuts_the_body_short(make: Make) -> None:
    client, _ = await make(FailingMidwayStorage)
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4")
    assert resp.status == 200
    with pytest.raises(ClientPayloadError):
        await resp.read()


async def test_metrics_count_playback_without_tokens_in_labels(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    tmp_path: Path,
) -> None:
    storage = SpyStorage(tmp_path / "media")
    await fill(storage)
    metrics = Metrics()
    app = web.Application(middlewares=[metrics.middleware])
    HlsDelivery(FakeControl(tokens()), storage, metrics=metrics).add_routes(app)
    add_metrics_route(app, metrics, token="scrape")
    client = await aiohttp_client(app)
    assert (await client.get(f"/play/{LIVE_SID}/live-ok/sd/00042.ts")).status == 200
    assert (await client.get(f"/play/{LIVE_SID}/expired/master.m3u8")).status == 403
    route = "/play/{session_id}/{token}/{path}"
    get = metrics.registry.get_sample_value
    labels = {"method": "GET", "route": route}
    assert get("academia_http_requests_total", {**labels, "status": "200"}) == 1
    assert get("academia_http_requests_total", {**labels, "status": "403"}) == 1
    assert get("academia_playback_refusals_total", {"reason": "expired"}) == 1
    assert get("academia_playback_bytes_total") == len(SEGMENT)
    text = await (await client.get("/metrics", headers={"Authorization": "Bearer scrape"})).text()
    assert "live-ok" not in text
