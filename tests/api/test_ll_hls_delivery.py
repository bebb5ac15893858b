"""Low-Latency HLS delivery while a class is live, through aiohttp's test client.

The node's media is a real SessionOutput fed, one part at a time, with the fragmented MP4
the production ffmpeg command writes (tests/support/live_media.py: 1 s segments, parts of
at most 0.2 s, a video-only "sd" rung and the shared "audio" rendition), so each test
decides exactly when the next part arrives. A blocking request is known to be waiting
once it entered `RenditionTrack.wait` (a spy counts the entries): tests never sleep to let
something happen, they wait for it, bounded.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import mediaserver.hls_delivery as hls_delivery
import transcode.hls_playlist as hls_playlist
import transcode.rendition_track as rendition_track
from mediaserver.control_port import PlaybackAllowed, PlaybackDecision
from mediaserver.hls_delivery import HlsDelivery
from support.hls_validator import validate_playlists
from support.live_media import (
    FPS,
    HEIGHT,
    WIDTH,
    LiveFeed,
    LiveMedia,
    StoringQueue,
    make_live_media,
)
from support.playback_fakes import FakeControl, SpyStorage
from transcode.rendition_track import RenditionTrack, part_name, segment_name
from transcode.session_output import SessionOutput

SID = 7
TOKEN = "viewer"
FAR_FUTURE = 4_000_000_000.0
BOUND = 20.0  # seconds: the most any step may take before the test fails

Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> LiveMedia:
    return make_live_media(tmp_path_factory.mktemp("ll-media"))


class WaitSpy:
    """Counts the requests that entered RenditionTrack.wait (a blocking reload, or a
    request for the hinted part), so a test knows when they are all waiting."""

    def __init__(self) -> None:
        self.entered = 0
        self._changed = asyncio.Event()

    def note(self) -> None:
        self.entered += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, count: int) -> None:
        async def reach() -> None:
            while self.entered < count:
                await self._changed.wait()
        await asyncio.wait_for(reach(), BOUND)


class RenderCount:
    """Counts calls of render_live_playlist by the tracks."""

    def __init__(self) -> None:
        self.calls = 0


@dataclass
class Stage:
    client: Client
    feed: LiveFeed
    storage: SpyStorage
    queue: StoringQueue
    control: FakeControl
    delivery: HlsDelivery
    outputs: dict[int, SessionOutput]
    waits: WaitSpy
    renders: RenderCount

    @property
    def output(self) -> SessionOutput:
        return self.feed.output

    def url(self, path: str, token: str = TOKEN) -> str:
        return f"/play/{SID}/{token}/{path}"

    async def get(self, path: str, token: str = TOKEN) -> aiohttp.ClientResponse:
        resp = await self.client.get(self.url(path, token))
        await resp.read()
        return resp

    async def playlist(self, path: str = "sd/index.m3u8") -> str:
        resp = await self.get(path)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        return await resp.text()

    def start(self, path: str) -> asyncio.Task[aiohttp.ClientResponse]:
        return asyncio.create_task(self.get(path))


@pytest.fixture
async def stage(
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    media: LiveMedia,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stage]:
    waits = WaitSpy()
    original_wait = RenditionTrack.wait

    async def spied_wait(track: RenditionTrack, msn: int, part: int | None,
                         timeout: float) -> bool:  # noqa: ASYNC109
        waits.note()
        return await original_wait(track, msn, part, timeout)

    monkeypatch.setattr(RenditionTrack, "wait", spied_wait)
    renders = RenderCount()
    # The name the tracks call: rendition_track's import of hls_playlist's function.
    original_render = hls_playlist.render_live_playlist

    def counted_render(*args: Any, **kwargs: Any) -> str:
        renders.calls += 1
        return original_render(*args, **kwargs)

    monkeypatch.setattr(rendition_track, "render_live_playlist", counted_render)

    storage = SpyStorage(tmp_path / "storage")
    queue = StoringQueue(storage)
    output = SessionOutput(SID, queue, work_dir=tmp_path / "work", segment_seconds=1.0)
    feed = LiveFeed(output, media)
    answers: dict[str, PlaybackDecision | Exception] = {
        TOKEN: PlaybackAllowed(SID, live=True, expires_at=FAR_FUTURE)}
    control = FakeControl(answers)
    outputs = {SID: output}
    delivery = HlsDelivery(control, storage, live=outputs.get)
    app = web.Application()
    delivery.add_routes(app)
    client = await aiohttp_client(app)
    yield Stage(client, feed, storage, queue, control, delivery, outputs, waits, renders)


def tags(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"#{name}")]


def hint(text: str) -> tuple[str, int, int]:
    """The preload hint's URI, and the (msn, part) it names."""
    (line,) = tags(text, "EXT-X-PRELOAD-HINT:")
    match = re.search(r'URI="(([0-9]+)\.([0-9]+)\.m4s)"', line)
    assert match is not None, line
    return match[1], int(match[2]), int(match[3])


def part_uris(text: str) -> list[str]:
    return re.findall(r'#EXT-X-PART:.*URI="([^"]+)"', text)


def segment_uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


async def error(resp: aiohttp.ClientResponse) -> str:
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "no-store"
    code: str = body["error"]["code"]
    return code


async def still_pending(*tasks: asyncio.Task[Any]) -> None:
    """The requests are still waiting a moment after they began to (a short, bounded look:
    the promise is that they wait for a feed, which has not come)."""
    done, _ = await asyncio.wait(tasks, timeout=0.2)
    assert not done


def decode(path: Path, data: bytes) -> tuple[int, int, int, int]:
    """(video frames, width, height, audio samples) of an init + media bytes."""
    path.write_bytes(data)
    frames = width = height = samples = 0
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                frames += 1
                width, height = frame.width, frame.height
            elif isinstance(frame, av.AudioFrame):
                samples += frame.samples
    return frames, width, height, samples


# -- the playlist -----------------------------------------------------------------------


async def test_live_playlists_are_low_latency_and_valid(stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    master = await stage.playlist("master.m3u8")
    sd = await stage.playlist("sd/index.m3u8")
    audio = await stage.playlist("audio/index.m3u8")
    validate_playlists({"master.m3u8": master, "sd/index.m3u8": sd, "audio/index.m3u8": audio})
    assert "sd/index.m3u8" in master and "audio/index.m3u8" in master
    for text, other in ((sd, "audio"), (audio, "sd")):
        (control,) = tags(text, "EXT-X-SERVER-CONTROL:")
        assert "CAN-BLOCK-RELOAD=YES" in control and "PART-HOLD-BACK=" in control
        assert "CAN-SKIP-UNTIL=" in control
        assert tags(text, "EXT-X-PART-INF:PART-TARGET=")
        assert tags(text, "EXT-X-PART:")
        assert tags(text, "EXT-X-MAP:URI=\"init_000000.mp4\"")
        (report,) = tags(text, "EXT-X-RENDITION-REPORT:")
        assert f'URI="../{other}/index.m3u8"' in report and "LAST-MSN=3" in report
        assert hint(text)[1:] == (3, 1)
        assert "#EXT-X-ENDLIST" not in text
    # DVR: every segment of the class so far, from 0.
    assert segment_uris(sd) == [segment_name(n) for n in range(3)]


async def test_a_blocking_reload_waits_for_the_part_then_lists_it(stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    coming = await stage.feed.to_mid_segment("sd")
    uri, msn, part = hint(await stage.playlist())
    task = stage.start(f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
    await stage.waits.until(1)
    await still_pending(task)
    # Another rendition's part does not answer it.
    await stage.feed.part("audio")
    await still_pending(task)
    await stage.feed.part("sd")
    resp = await asyncio.wait_for(task, BOUND)
    assert resp.status == 200
    text = await resp.text()
    validate_playlists({"sd/index.m3u8": text})
    assert uri == part_name(msn, part) and uri in part_uris(text)
    assert hint(text)[1:] == (msn, part + 1)
    assert "_HLS_" not in text
    # Everyone asking this question may share the answer, for a second (an edge does).
    assert resp.headers["Cache-Control"] == "public, max-age=1"
    # What it lists is what was fed.
    assert stage.feed.track("sd").part_data(msn, part) == coming.data


async def test_a_blocking_reload_for_the_next_segment_waits_for_all_of_it(
        stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    await stage.feed.to_mid_segment("sd")
    task = stage.start("sd/index.m3u8?_HLS_msn=3")
    await stage.waits.until(1)
    # The rest of segment 3's parts: each a change, none the whole segment.
    while not stage.feed.next_part_starts_segment("sd"):
        await stage.feed.part("sd")
    await still_pending(task)
    await stage.feed.part("sd")  # segment 4 begins: segment 3 is complete
    resp = await asyncio.wait_for(task, BOUND)
    assert resp.status == 200
    text = await resp.text()
    validate_playlists({"sd/index.m3u8": text})
    assert segment_name(3) in segment_uris(text)


async def test_a_blocking_reload_never_answered_is_503_not_ready(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three target durations is the spec's patience; made tiny here so the test is quick.
    monkeypatch.setattr(hls_delivery, "BLOCK_TARGETS", 0.01)
    await stage.feed.start()
    await stage.feed.to_segment(1)
    _, msn, part = hint(await stage.playlist())
    resp = await stage.get(f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
    assert resp.status == 503
    assert await error(resp) == "not_ready"


@pytest.mark.parametrize(
    "query",
    [
        "_HLS_part=1",  # a part without its segment
        "_HLS_msn=",
        "_HLS_msn=abc",
        "_HLS_msn=-1",
        "_HLS_msn=1.5",
        "_HLS_msn=%D9%A1",  # an Arabic-Indic one: digits, but not ASCII
        "_HLS_msn=1&_HLS_part=x",
        "_HLS_msn=1&_HLS_part=-1",
        "_HLS_msn=99999999999999999999999999",
        "_HLS_msn=1&_HLS_part=99999999999999999999",
        "_HLS_skip=NO",
        "_HLS_skip=yes",
    ],
)
async def test_malformed_blocking_parameters_are_400(stage: Stage, query: str) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(2)
    resp = await stage.get(f"sd/index.m3u8?{query}")
    assert resp.status == 400
    assert await error(resp) == "bad_request"
    assert stage.waits.entered == 0


async def test_requests_too_far_ahead_are_400_without_waiting(stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(2)
    track = stage.feed.track("sd")
    open_number = track.open_number
    for query in (f"_HLS_msn={open_number + 3}", f"_HLS_msn={open_number + 3}&_HLS_part=0",
                  "_HLS_msn=999999999", f"_HLS_msn={open_number}&_HLS_part=11",
                  f"_HLS_msn={open_number}&_HLS_part=999999999"):
        resp = await stage.get(f"sd/index.m3u8?{query}")
        assert resp.status == 400, query
        assert await error(resp) == "too_far_ahead"
    resp = await stage.get(f"sd/{part_name(open_number + 3, 0)}")
    assert resp.status == 404
    assert stage.waits.entered == 0


async def test_a_request_for_the_hinted_part_waits_and_gets_its_bytes(
        stage: Stage, tmp_path: Path) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(2)
    coming = await stage.feed.to_mid_segment("sd")
    uri, _, _ = hint(await stage.playlist())
    task = stage.start(f"sd/{uri}")
    await stage.waits.until(1)
    await still_pending(task)
    await stage.feed.part("sd")
    resp = await asyncio.wait_for(task, BOUND)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "video/iso.segment"
    body = await resp.read()
    assert body == coming.data
    # It plays after the parts before it in its segment, as a player appends it.
    _, number, index = hint(await stage.playlist())
    earlier = b""
    for k in range(index - 1):
        earlier += await (await stage.get(f"sd/{part_name(number, k)}")).read()
    init = await (await stage.get("sd/init_000000.mp4")).read()
    frames, width, height, _ = decode(tmp_path / "parts.mp4", init + earlier + body)
    assert (width, height) == (WIDTH, HEIGHT)
    parts = stage.feed.media.streams["sd"].segment_parts(number)[:index]
    assert frames == round(sum(p.duration for p in parts) * FPS)


# -- delta updates ----------------------------------------------------------------------


async def test_skip_gives_a_delta_update_once_the_class_is_long_enough(stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    short = await stage.playlist("sd/index.m3u8?_HLS_skip=YES")
    # Too short to skip anything yet: the whole playlist.
    assert not tags(short, "EXT-X-SKIP") and segment_uris(short)[0] == segment_name(0)
    await stage.feed.to_segment(10)
    full = await stage.playlist()
    for skip in ("YES", "v2"):
        delta = await stage.playlist(f"sd/index.m3u8?_HLS_skip={skip}")
        validate_playlists({"sd/index.m3u8": delta})
        (line,) = tags(delta, "EXT-X-SKIP:SKIPPED-SEGMENTS=")
        skipped = int(line.split("=")[1])
        assert skipped > 0
        # The rest is the full playlist's tail, unchanged.
        assert segment_uris(delta) == segment_uris(full)[skipped:]
        assert segment_uris(delta)[0] == segment_name(skipped)
        assert "_HLS_" not in delta

    # A blocking delta request: waits, then the delta that lists the new part.
    await stage.feed.to_mid_segment("sd")
    _, msn, part = hint(await stage.playlist())
    task = stage.start(f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES")
    await stage.waits.until(1)
    await still_pending(task)
    await stage.feed.part("sd")
    resp = await asyncio.wait_for(task, BOUND)
    assert resp.status == 200
    delta = await resp.text()
    validate_playlists({"sd/index.m3u8": delta})
    assert tags(delta, "EXT-X-SKIP:") and part_name(msn, part) in part_uris(delta)
    assert "_HLS_" not in delta


# -- the end of the class ----------------------------------------------------------------


async def test_requests_blocking_when_the_class_ends_get_the_final_playlist(
        stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    await stage.feed.to_mid_segment("sd")
    uri, msn, part = hint(await stage.playlist())
    reloads = [stage.start(f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
               stage.start(f"audio/index.m3u8?_HLS_msn={msn + 1}")]
    hinted = stage.start(f"sd/{uri}")
    await stage.waits.until(3)
    await still_pending(*reloads, hinted)
    await stage.output.finalize(stage.storage)
    for task in reloads:
        resp = await asyncio.wait_for(task, BOUND)
        assert resp.status == 200
        text = await resp.text()
        validate_playlists({"index.m3u8": text})
        assert "#EXT-X-ENDLIST" in text and not tags(text, "EXT-X-PRELOAD-HINT")
    # The hinted part never came: not found, rather than waiting on.
    resp = await asyncio.wait_for(hinted, BOUND)
    assert resp.status == 404
    assert await error(resp) == "not_found"


# -- where the media comes from ----------------------------------------------------------


async def test_live_without_media_on_this_node_is_503_media_unavailable(
        stage: Stage) -> None:
    # The grant says live, but the class's output has no run yet: no ladder to offer...
    resp = await stage.get("master.m3u8")
    assert resp.status == 503
    assert await error(resp) == "media_unavailable"
    # ...or is on another node.
    del stage.outputs[SID]
    for path in ("master.m3u8", "sd/index.m3u8", "sd/000000.m4s", "sd/000000.0.m4s",
                 "sd/init_000000.mp4", "sd/index.m3u8?_HLS_msn=0&_HLS_part=0"):
        resp = await stage.get(path)
        assert resp.status == 503, path
        assert await error(resp) == "media_unavailable"
    assert stage.storage.read_keys == []
    assert stage.waits.entered == 0


async def test_segments_come_from_memory_then_from_storage(stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.rest()
    track = stage.feed.track("sd")
    last = len(track.segments) - 1
    assert last >= 8 and track.segment_data(0) is None  # long gone from memory
    # The newest segment: from memory, before the upload queue stored it.
    assert await stage.storage.size(f"recordings/{SID}/sd/{segment_name(last)}") is None
    stage.storage.read_keys.clear()
    resp = await stage.get(f"sd/{segment_name(last)}")
    assert resp.status == 200
    assert await resp.read() == track.segment_data(last)
    assert stage.storage.read_keys == []
    # The first: not in memory, and not stored yet either.
    assert (await stage.get(f"sd/{segment_name(0)}")).status == 404
    await stage.queue.flush()
    stage.storage.read_keys.clear()
    resp = await stage.get(f"sd/{segment_name(0)}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "video/iso.segment"
    parts = stage.feed.media.streams["sd"].segment_parts(0)
    assert await resp.read() == b"".join(p.data for p in parts)
    assert stage.storage.read_keys == [f"recordings/{SID}/sd/{segment_name(0)}"]
    # A part of it is gone for good: players a little behind ask for segments instead.
    assert (await stage.get(f"sd/{part_name(0, 0)}")).status == 404


async def test_inits_parts_and_segments_decode(stage: Stage, tmp_path: Path) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    get = stage.get

    async def body(path: str, content_type: str) -> bytes:
        resp = await get(path)
        assert resp.status == 200, path
        assert resp.headers["Content-Type"] == content_type, path
        return await resp.read()

    sd_init = await body("sd/init_000000.mp4", "video/mp4")
    audio_init = await body("audio/init_000000.mp4", "video/mp4")
    sd_track, audio_track = stage.feed.track("sd"), stage.feed.track("audio")

    segment = await body("sd/000001.m4s", "video/iso.segment")
    frames, width, height, samples = decode(tmp_path / "s.mp4", sd_init + segment)
    assert (width, height, samples) == (WIDTH, HEIGHT, 0)
    assert frames == round(sd_track.segments[1].duration * FPS) == FPS

    # A segment's first part starts on a keyframe: it plays on its own; the others
    # follow it.
    fed = stage.feed.media.streams["sd"].segment_parts(2)
    parts = [await body(f"sd/{part_name(2, k)}", "video/iso.segment") for k in range(3)]
    assert parts == [p.data for p in fed[:3]]
    frames, width, height, _ = decode(tmp_path / "p.mp4", sd_init + parts[0])
    assert (width, height) == (WIDTH, HEIGHT)
    assert frames == round(fed[0].duration * FPS) > 0
    frames, width, height, _ = decode(tmp_path / "ps.mp4", sd_init + b"".join(parts))
    assert frames == round(sum(p.duration for p in fed[:3]) * FPS)

    segment = await body("audio/000001.m4s", "video/iso.segment")
    frames, _, _, samples = decode(tmp_path / "a.mp4", audio_init + segment)
    assert frames == 0
    assert samples == round(audio_track.segments[1].duration * 48_000)
    part = await body("audio/000002.0.m4s", "video/iso.segment")
    _, _, _, samples = decode(tmp_path / "ap.mp4", audio_init + part)
    assert samples > 0


# -- staying cheap ------------------------------------------------------------------------


async def test_hundreds_of_waiting_players_are_answered_by_one_feed_and_one_render(
        stage: Stage) -> None:
    await stage.feed.start()
    await stage.feed.to_segment(3)
    await stage.feed.to_mid_segment("sd")
    uri, msn, part = hint(await stage.playlist())
    url = str(stage.client.make_url(
        stage.url(f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")))
    players = 300

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def reload() -> tuple[int, str]:
            async with http.get(url) as resp:
                return resp.status, await resp.text()

        tasks = [asyncio.create_task(reload()) for _ in range(players)]
        await stage.waits.until(players)
        await still_pending(*tasks)
        renders_before = stage.renders.calls
        await stage.feed.part("sd")
        answers = await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
    assert {status for status, _ in answers} == {200}
    assert len({text for _, text in answers}) == 1
    text = answers[0][1]
    assert uri in part_uris(text)
    # One change, one render, whatever the number of players.
    assert stage.renders.calls - renders_before == 1
    # And the authorization was asked once for them all.
    assert stage.control.calls == [(SID, TOKEN)]


async def test_random_tokens_are_refused_before_any_waiting(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hls_delivery, "MAX_CACHED_DECISIONS", 50)
    await stage.feed.start()
    await stage.feed.to_segment(2)
    _, msn, part = hint(await stage.playlist())
    stage.control.calls.clear()
    hostile = 200
    paths = [f"sd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}", f"sd/{part_name(msn, part)}"]
    resps = await asyncio.wait_for(asyncio.gather(*(
        stage.get(paths[i % 2], token=secrets.token_urlsafe(16)) for i in range(hostile))),
        BOUND)
    assert {resp.status for resp in resps} == {403}
    assert {await error(resp) for resp in resps} == {"bad_token"}
    # Refused before reaching the track: no part came, yet none of them was kept waiting.
    assert stage.waits.entered == 0
    assert len(stage.control.calls) == hostile
    # What the refusals leave behind is bounded: not counted as viewers (the one real
    # viewer is), and the cache of answers keeps only the newest.
    assert stage.delivery.viewers(SID) == 1
    assert len(stage.delivery._cache) <= 50
    assert not stage.delivery._pending
