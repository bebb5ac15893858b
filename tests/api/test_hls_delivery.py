"""HLS delivery behind playback tokens: bytes, headers, storage prefixes, refusals, caching.

The app under test is HlsDelivery over a fake control port (answers per token, counts its
calls) and the real LocalStorage in a temporary folder. While a session is live its
media comes from a real SessionOutput fed with the production ffmpeg command's fragmented
MP4 (tests/support/live_media.py); after the class, from what that SessionOutput stored
under `recordings/`. The Low-Latency promises (blocking reloads, parts, delta updates) are
in test_ll_hls_delivery.py.
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
)
from mediaserver.hls_delivery import HlsDelivery, RangeNotSatisfiable, parse_range
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import add_metrics_route
from support.hls_validator import validate_playlists
from support.live_media import LiveFeed, LiveMedia, StoringQueue, make_live_media
from support.playback_fakes import FakeClock, FakeControl, SpyStorage
from transcode.session_output import SessionOutput
from transcode.storage.backend import Storage, StorageError
from transcode.storage.local import LocalStorage

LIVE_SID = 7
ENDED_SID = 8
FAR_FUTURE = 4_000_000_000.0

# The live session is fed until segments 0-2 of each rendition are complete and segment 3
# has its first part: all of that is in the node's memory, nothing needs storage.
LIVE_SEGMENTS = 3
SEGMENT_PATH = "sd/000002.m4s"
MISSING_SEGMENT_PATH = "sd/000999.m4s"
# Recordings made before segments became CMAF are MPEG-TS, and still play.
LEGACY_TS = bytes(range(256)) * 700  # ~180 KB
MP4 = os.urandom(3 * (1 << 20) + 12345)  # several storage chunks


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> LiveMedia:
    return make_live_media(tmp_path_factory.mktemp("live-media"))


async def live_output(session_id: int, media: LiveMedia, storage: Storage, work_dir: Path,
                      segments: int) -> LiveFeed:
    """A SessionOutput of `session_id` fed until `segments` segments are complete."""
    output = SessionOutput(session_id, StoringQueue(storage), work_dir=work_dir,
                           segment_seconds=1.0)
    feed = LiveFeed(output, media)
    await feed.start()
    await feed.to_segment(segments)
    return feed


async def ended_output(media: LiveMedia, storage: Storage, work_dir: Path) -> LiveFeed:
    """The ended session: its whole run fed, finalised (so storage holds its recording),
    and still in this node's memory, which must not be served any more."""
    feed = await live_output(ENDED_SID, media, storage, work_dir, 1)
    await feed.rest()
    await feed.output.finalize(storage)
    return feed


class Served:
    """What one test app serves: the live session's feed and the ended session's."""

    def __init__(self, live: LiveFeed, ended: LiveFeed) -> None:
        self.live = live
        self.ended = ended

    def output(self, session_id: int) -> SessionOutput | None:
        return {LIVE_SID: self.live.output, ENDED_SID: self.ended.output}.get(session_id)

    @property
    def segment(self) -> bytes:
        data = self.live.track("sd").segment_data(2)
        assert data is not None
        return data


class RangedStorage(SpyStorage):
    """Records range reads too."""

    def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        self._touch(key)
        return super().stream_range(key, start, length, chunk_size)


STORAGE = web.AppKey("storage", SpyStorage)
SERVED = web.AppKey("served", Served)

Make = Callable[..., Awaitable[tuple[TestClient[web.Request, web.Application], FakeControl]]]


def tokens() -> dict[str, PlaybackDecision | Exception]:
    return {
        "live-ok": PlaybackAllowed(LIVE_SID, live=True, expires_at=FAR_FUTURE),
        "ended-ok": PlaybackAllowed(ENDED_SID, live=False, expires_at=FAR_FUTURE),
        "expired": PlaybackRefused("expired"),
        "not-enrolled": PlaybackRefused("not_allowed"),
        "down": ControlUnavailable("database is down"),
    }


async def fill(storage: LocalStorage, media: LiveMedia, work: Path) -> Served:
    live = await live_output(LIVE_SID, media, storage, work / "live", LIVE_SEGMENTS)
    ended = await ended_output(media, storage, work / "ended")
    await storage.put(f"recordings/{ENDED_SID}/sd/00042.ts", LEGACY_TS, "x")
    await storage.put(f"recordings/{ENDED_SID}/recording.mp4", MP4, "x")
    await storage.put(f"recordings/{LIVE_SID}/recording.mp4", b"old take", "x")
    await storage.put("secret.txt", b"not media", "x")
    return Served(live, ended)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    tmp_path: Path,
    clock: FakeClock,
    media: LiveMedia,
) -> Make:
    async def build(
        storage_type: type[SpyStorage] = SpyStorage,
        answers: dict[str, PlaybackDecision | Exception] | None = None,
    ) -> tuple[TestClient[web.Request, web.Application], FakeControl]:
        storage = storage_type(tmp_path / "media")
        served = await fill(storage, media, tmp_path / "work")
        storage.read_keys.clear()
        storage.body_reads.clear()
        control = FakeControl(tokens() if answers is None else answers)
        app = web.Application()
        app[STORAGE] = storage
        app[SERVED] = served
        HlsDelivery(control, storage, clock=clock, live=served.output).add_routes(app)
        return await aiohttp_client(app), control

    return build


def spy(client: TestClient[web.Request, web.Application]) -> SpyStorage:
    storage = client.app[STORAGE]
    assert isinstance(storage, SpyStorage)
    return storage


def served(client: TestClient[web.Request, web.Application]) -> Served:
    return client.app[SERVED]


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


async def test_live_playlists_and_segments_come_from_memory(make: Make) -> None:
    client, _ = await make()
    feed = served(client).live
    resp = await client.get(f"/play/{LIVE_SID}/live-ok/master.m3u8")
    assert resp.status == 200
    master = await resp.text()
    assert master == feed.output.live_master()
    assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/index.m3u8")
    assert resp.status == 200
    playlist = await resp.text()
    assert playlist == feed.output.live_playlist("sd")
    assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    validate_playlists({"master.m3u8": master, "sd/index.m3u8": playlist})
    # The whole class so far (DVR from segment 0), the open segment's first part hinted on.
    assert "#EXT-X-MEDIA-SEQUENCE:0\n" in playlist
    assert [line for line in playlist.splitlines() if line.endswith(".m4s")
            and not line.startswith("#")] == ["000000.m4s", "000001.m4s", "000002.m4s"]

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}")
    assert resp.status == 200
    assert await resp.read() == served(client).segment
    assert resp.headers["Content-Type"] == "video/iso.segment"
    assert resp.headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/init_000000.mp4")
    assert resp.status == 200
    assert await resp.read() == feed.media.streams["sd"].init
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["Cache-Control"] == "public, max-age=86400, immutable"

    resp = await client.get(f"/play/{LIVE_SID}/live-ok/sd/000003.0.m4s")
    assert resp.status == 200
    assert await resp.read() == feed.track("sd").part_data(3, 0)
    assert resp.headers["Content-Type"] == "video/iso.segment"
    # The live edge is never read from storage (nor stored as playlists under live/).
    assert spy(client).read_keys == []


async def test_ended_session_is_served_from_recordings(make: Make) -> None:
    client, _ = await make()
    storage = spy(client)
    stored = {name: await storage.get(f"recordings/{ENDED_SID}/sd/{name}")
              for name in ("index.m3u8", "000001.m4s")}
    storage.read_keys.clear()
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/index.m3u8")
    assert resp.status == 200
    text = await resp.text()
    assert text.encode() == stored["index.m3u8"]
    assert "#EXT-X-ENDLIST" in text and "#EXT-X-PART" not in text
    validate_playlists({"sd/index.m3u8": text})
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/000001.m4s")
    assert resp.status == 200
    assert await resp.read() == stored["000001.m4s"]
    assert resp.headers["Content-Type"] == "video/iso.segment"
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/init_000000.mp4")
    assert await resp.read() == served(client).ended.media.streams["sd"].init
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/00042.ts")
    assert await resp.read() == LEGACY_TS
    assert resp.headers["Content-Type"] == "video/mp2t"
    # The ended session's media is still in this node's memory: only the recording is
    # served once the grant says the class is over.
    assert storage.read_keys == [
        f"recordings/{ENDED_SID}/sd/index.m3u8",
        f"recordings/{ENDED_SID}/sd/000001.m4s",
        f"recordings/{ENDED_SID}/sd/init_000000.mp4",
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


async def test_shared_caches_keep_media_for_good_and_playlists_never(make: Make) -> None:
    """Segments, parts and init files never change under their URL: any cache (the edge,
    keyed without the token) may keep them, immutable. The recording download and its
    poster stay the viewer's own; plain playlists are revalidated every time."""
    client, _ = await make()
    await spy(client).put(f"recordings/{ENDED_SID}/poster.jpg", b"\xff\xd8jpeg", "x")
    media = [
        await client.get(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}"),
        await client.head(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}"),
        await client.get(f"/play/{LIVE_SID}/live-ok/sd/000003.0.m4s"),
        await client.get(f"/play/{LIVE_SID}/live-ok/sd/init_000000.mp4"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/sd/000001.m4s"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/sd/init_000000.mp4"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/sd/00042.ts"),
    ]
    for resp in media:
        assert resp.status == 200, resp.url
        assert resp.headers["Cache-Control"] == "public, max-age=86400, immutable", resp.url
    downloads = [
        await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4"),
        await client.head(f"/play/{ENDED_SID}/ended-ok/recording.mp4"),
        await client.get(f"/play/{ENDED_SID}/ended-ok/recording.mp4",
                         headers={"Range": "bytes=0-3"}),
        await client.get(f"/play/{ENDED_SID}/ended-ok/poster.jpg"),
    ]
    for resp in downloads:
        assert resp.status in (200, 206), resp.url
        directives = {d.strip().split("=")[0] for d in resp.headers["Cache-Control"].split(",")}
        assert "private" in directives and "public" not in directives, resp.url
    for path in ("master.m3u8", "sd/index.m3u8", "sd/index.m3u8?_HLS_skip=YES"):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{path}")
        assert resp.headers["Cache-Control"] == "no-cache", path
    # A refusal is never kept: the next request asks again.
    resp = await client.get(f"/play/{LIVE_SID}/nobody/{SEGMENT_PATH}")
    assert resp.status == 403 and resp.headers["Cache-Control"] == "no-store"


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
    resp = await client.head(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(served(client).segment))
    assert resp.headers["Content-Type"] == "video/iso.segment"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert await resp.read() == b""
    resp = await client.head(f"/play/{ENDED_SID}/ended-ok/recording.mp4")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(MP4))
    assert await resp.read() == b""
    resp = await client.head(f"/play/{ENDED_SID}/ended-ok/sd/000001.m4s")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "video/iso.segment"
    assert int(resp.headers["Content-Length"]) > 0
    assert await resp.read() == b""
    resp = await client.head(f"/play/{LIVE_SID}/live-ok/{MISSING_SEGMENT_PATH}")
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
    for path in (MISSING_SEGMENT_PATH, "sd/000999.0.m4s", "sd/init_000999.mp4",
                 "hd/index.m3u8", "hd/000001.m4s", "sd/00042.ts"):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{path}")
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await client.get(f"/play/{ENDED_SID}/ended-ok/sd/000999.m4s")
    assert resp.status == 404


@pytest.mark.parametrize(
    "path",
    ["secret.txt", "sd/index.m3u8x", "SD/index.m3u8", "sd/4.ts.bak", "sd/x.ts", "a/b/c.ts",
     "recording.mp4/x", "master.m3u8%00", "sd/%C2%B2.ts", "sd/1.2.3.m4s", "sd/init_.mp4",
     "sd/init_1.m4s", "sd/1.mp4", "sd/-1.m4s", "sd/1.-1.m4s", "sd/%D9%A1.m4s",
     "sd/1.12345.m4s", "sd/index.m3u8/x"],
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
    assert all(k.startswith(f"recordings/{LIVE_SID}/") for k in storage.read_keys), (
        storage.read_keys)


async def test_grants_are_cached_per_session_and_token(make: Make, clock: FakeClock) -> None:
    client, control = await make()
    for _ in range(20):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}")
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
    media: LiveMedia,
) -> None:
    storage = SpyStorage(tmp_path / "media")
    live = await live_output(LIVE_SID, media, storage, tmp_path / "work", LIVE_SEGMENTS)
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
    HlsDelivery(control, storage, live={LIVE_SID: live.output}.get).add_routes(app)
    client = await aiohttp_client(app)

    async def fetch() -> int:
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}")
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
    # What must come from storage: a live segment no longer in memory, the recording.
    for target in (f"{LIVE_SID}/live-ok/{MISSING_SEGMENT_PATH}",
                   f"{ENDED_SID}/ended-ok/master.m3u8", f"{ENDED_SID}/ended-ok/sd/index.m3u8",
                   f"{ENDED_SID}/ended-ok/sd/000001.m4s", f"{ENDED_SID}/ended-ok/recording.mp4"):
        resp = await client.get(f"/play/{target}")
        assert resp.status == 503, target
        assert (await resp.json())["error"]["code"] == "storage_unavailable"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # The live edge is in memory: viewers keep watching while storage is down.
    for path in ("master.m3u8", "sd/index.m3u8", SEGMENT_PATH, "sd/000003.0.m4s",
                 "sd/init_000000.mp4"):
        resp = await client.get(f"/play/{LIVE_SID}/live-ok/{path}")
        assert resp.status == 200, path


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
    media: LiveMedia,
) -> None:
    storage = SpyStorage(tmp_path / "media")
    live = await live_output(LIVE_SID, media, storage, tmp_path / "work", LIVE_SEGMENTS)
    segment = live.track("sd").segment_data(2)
    assert segment is not None
    metrics = Metrics()
    app = web.Application(middlewares=[metrics.middleware])
    HlsDelivery(FakeControl(tokens()), storage, metrics=metrics,
                live={LIVE_SID: live.output}.get).add_routes(app)
    add_metrics_route(app, metrics, token="scrape")
    client = await aiohttp_client(app)
    assert (await client.get(f"/play/{LIVE_SID}/live-ok/{SEGMENT_PATH}")).status == 200
    assert (await client.get(f"/play/{LIVE_SID}/expired/master.m3u8")).status == 403
    route = "/play/{session_id}/{token}/{path}"
    get = metrics.registry.get_sample_value
    labels = {"method": "GET", "route": route}
    assert get("academia_http_requests_total", {**labels, "status": "200"}) == 1
    assert get("academia_http_requests_total", {**labels, "status": "403"}) == 1
    assert get("academia_playback_refusals_total", {"reason": "expired"}) == 1
    assert get("academia_playback_bytes_total") == len(segment)
    text = await (await client.get("/metrics", headers={"Authorization": "Bearer scrape"})).text()
    assert "live-ok" not in text
