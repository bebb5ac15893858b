"""SegmentReceiver: routing by token, name checks, each chunk handed on as it arrives,
non-MP4 bytes refused, a stream cut short keeping what it completed, and the worker's
real ffmpeg streaming its fragmented MP4 outputs to it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import pytest

from support.cmaf_runs import AUDIO, SD, SOURCE_INFO, decode, make_flv, package_stream, run_ladder
from support.hls_validator import validate_playlists
from transcode.command import ladder_command
from transcode.segment_receiver import SegmentReceiver, epoch_name
from transcode.session_output import SessionOutput
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue

FPS = 30


@dataclass(frozen=True)
class Publisher:
    flv: Path  # 5 s, as the RTMP server hands it to a worker
    sd: bytes  # the SD rung of a ladder run, as ffmpeg streams it


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    root = tmp_path_factory.mktemp("publisher")
    flv = make_flv(root / "a.flv", 5, 440)
    return Publisher(flv, run_ladder(flv, [SD, AUDIO], root / "out")["sd"])


class RecordingOutput(SessionOutput):
    """A SessionOutput that only records what the receiver hands it."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(1, _NoQueue(), work_dir=work_dir)
        self.received: list[tuple[str, str, bytes]] = []
        self.ended: list[tuple[str, str]] = []
        self.fed = asyncio.Event()

    async def feed(self, epoch: str, rendition: str, data: bytes) -> None:
        self.received.append((epoch, rendition, data))
        self.fed.set()

    async def end_stream(self, epoch: str, rendition: str) -> None:
        self.ended.append((epoch, rendition))

    def bodies(self) -> dict[tuple[str, str], bytes]:
        out: dict[tuple[str, str], bytes] = {}
        for epoch, rendition, data in self.received:
            out[(epoch, rendition)] = out.get((epoch, rendition), b"") + data
        return out


class _NoQueue:
    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        raise AssertionError("nothing may be queued")

    def delete(self, key: str) -> bool:
        raise AssertionError("nothing may be queued")

    def delete_prefix(self, prefix: str) -> bool:
        raise AssertionError("nothing may be queued")

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return True


@pytest.fixture
async def receiver() -> AsyncIterator[SegmentReceiver]:
    server = SegmentReceiver()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _status(http: aiohttp.ClientSession, method: str, url: str,
                  data: bytes | None = b"x") -> int:
    async with http.request(method, url, data=data) as response:
        await response.read()
        return response.status


async def _until(condition: Callable[[], bool], what: str, within: float = 60) -> None:
    """A behaviour check with a generous bound (a busy machine is slow), not a timing one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def test_routes_streams_by_token(receiver: SegmentReceiver,
                                       http: aiohttp.ClientSession, tmp_path: Path) -> None:
    one, two = RecordingOutput(tmp_path / "1"), RecordingOutput(tmp_path / "2")
    base_one = receiver.register("tok-one", one)
    base_two = receiver.register("tok_two", two)
    assert base_one == f"http://127.0.0.1:{receiver.port}/ingest/tok-one"
    assert await _status(http, "PUT", f"{base_one}/01/sd/stream.mp4", b"fmp4") == 201
    assert await _status(http, "POST", f"{base_two}/2/audio/stream.mp4", b"aac") == 201
    assert one.bodies() == {(epoch_name("tok-one", 1), "sd"): b"fmp4"}
    assert one.ended == [(epoch_name("tok-one", 1), "sd")]
    assert two.bodies() == {("tok_two/2", "audio"): b"aac"}
    assert two.ended == [("tok_two/2", "audio")]
    receiver.unregister("tok-one")
    assert await _status(http, "PUT", f"{base_one}/1/sd/stream.mp4") == 404
    assert len(one.received) == 1
    with pytest.raises(ValueError):
        receiver.register("tok_two", one)  # taken by another session
    with pytest.raises(ValueError):
        receiver.register("bad/token", one)


async def test_each_chunk_reaches_the_output_as_it_arrives(
        receiver: SegmentReceiver, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A class streams for hours in one request: the output gets each chunk while the
    request goes on (no body cap, no waiting for its end)."""
    output = RecordingOutput(tmp_path)
    base = receiver.register("tok", output)

    async def body() -> AsyncIterator[bytes]:  # chunked, ffmpeg's way
        yield b"first"
        # The next chunk is sent only once the output has the first one.
        await asyncio.wait_for(output.fed.wait(), 30)
        assert output.ended == []
        for _ in range(50):
            yield b"y" * 100_000

    async with http.put(f"{base}/1/sd/stream.mp4", data=body()) as response:
        assert response.status == 201
    assert output.bodies() == {("tok/1", "sd"): b"first" + b"y" * 5_000_000}
    assert output.ended == [("tok/1", "sd")]


async def test_unknown_token_and_bad_names(receiver: SegmentReceiver,
                                           http: aiohttp.ClientSession, tmp_path: Path) -> None:
    output = RecordingOutput(tmp_path)
    base = receiver.register("tok", output)
    root = f"http://127.0.0.1:{receiver.port}/ingest"
    assert await _status(http, "PUT", f"{root}/guess/1/sd/stream.mp4") == 404
    assert await _status(http, "PUT", f"{root}/guess/1/sd/evil.sh") == 404
    for bad in ("x1/sd/stream.mp4", "1/SD/stream.mp4", "1/s-d/stream.mp4",
                "1234567890/sd/stream.mp4", "1/sd/seg_00000.ts", "1/sd/index.m3u8",
                "1/sd/stream.mp4.m3u8", "1/sd/stream.m4s", "1/sd/evil.sh",
                "1/sd/..%2Fstream.mp4"):
        assert await _status(http, "PUT", f"{base}/{bad}") == 400, bad
    assert await _status(http, "PUT", f"{base}/1/stream.mp4") == 404
    assert await _status(http, "PUT", f"{base}/1/sd/x/stream.mp4") == 404
    assert await _status(http, "GET", f"{base}/1/sd/stream.mp4", None) == 405
    assert await _status(http, "DELETE", f"{base}/1/sd/stream.mp4", None) == 405
    assert output.received == [] and output.ended == []


async def test_bytes_that_are_not_a_fragmented_mp4_are_refused(
        receiver: SegmentReceiver, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    output = SessionOutput(1, _NoQueue(), work_dir=tmp_path)  # queues nothing
    base = receiver.register("tok", output)
    transport_stream = b"\x47" + b"\x00" * 187
    assert await _status(http, "PUT", f"{base}/1/sd/stream.mp4", transport_stream * 20) == 400
    assert await _status(http, "PUT", f"{base}/1/sd/stream.mp4", b"<html>nope</html>") == 400
    assert output.track("sd") is None


def _package(data: bytes) -> tuple[bytes, list[bytes]]:
    """The init and segments `data` holds complete (2 s segments)."""
    packaged = package_stream(data, 2.0)
    return packaged.init, packaged.segments


@dataclass
class Stored:
    storage: LocalStorage
    queue: UploadQueue


@pytest.fixture
async def stored(tmp_path: Path) -> AsyncIterator[Stored]:
    storage = LocalStorage(tmp_path / "store")
    queue = UploadQueue(storage, tmp_path / "spool", retry_initial=0.05)
    await queue.start()
    yield Stored(storage, queue)
    await queue.close(10)


async def test_a_stream_cut_short_keeps_its_completed_segments(
        receiver: SegmentReceiver, stored: Stored, publisher: Publisher,
        tmp_path: Path) -> None:
    """ffmpeg killed mid-stream: the connection drops mid-box. What the stream completed
    is stored and plays; the box cut in half is not."""
    output = SessionOutput(5, stored.queue, work_dir=tmp_path / "work")
    base = receiver.register("tok", output)
    output.start_epoch(epoch_name("tok", 1), [SD, AUDIO])
    sent = publisher.sd[:len(publisher.sd) * 7 // 10]
    init, segments = _package(sent)
    assert len(segments) >= 2
    path = base.split(str(receiver.port), 1)[1] + "/1/sd/stream.mp4"
    _reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    writer.write(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    for offset in range(0, len(sent), 8192):
        chunk = sent[offset:offset + 8192]
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
    writer.close()  # no last chunk: cut short
    await writer.wait_closed()
    keys = [f"recordings/5/sd/{n:06d}.m4s" for n in range(len(segments))]

    async def all_stored() -> bool:
        await stored.queue.flush(10)
        found = set(await stored.storage.list("recordings/5/sd/"))
        return set(keys) <= found

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not await all_stored():
        assert loop.time() < deadline, "the completed segments were never stored"
        await asyncio.sleep(0.05)
    track = output.track("sd")
    assert track is not None and len(track.segments) == len(segments)
    assert await stored.storage.get("recordings/5/sd/init_000000.mp4") == init
    for key, data in zip(keys, segments, strict=True):
        assert await stored.storage.get(key) == data
        assert decode(init, data).frames >= FPS // 2
    live = output.live_playlist("sd")
    assert live is not None
    validate_playlists({"sd": live})
    await output.finalize(stored.storage)


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout
    return float(json.loads(out)["format"]["duration"])


async def test_real_ffmpeg_streams_to_the_receiver(
        receiver: SegmentReceiver, stored: Stored, publisher: Publisher,
        tmp_path: Path) -> None:
    """The worker's own command line, PUTting one chunked stream per output."""
    storage = stored.storage
    output = SessionOutput(7, stored.queue, work_dir=tmp_path / "work")
    base = receiver.register("worker-token", output)
    output.start_epoch(epoch_name("worker-token", 1), [SD, AUDIO])
    command = ladder_command([SD, AUDIO], SOURCE_INFO, base_url=base, run=1,
                             segment_seconds=2, preset="ultrafast")
    with publisher.flv.open("rb") as flv:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=flv, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()

    def complete() -> bool:
        # Each stream's end closes its last segment: 5 s of media in whole segments.
        tracks = [output.track("sd"), output.track("audio")]
        return all(t is not None and sum(s.duration for s in t.segments) >= 4.9
                   for t in tracks)

    await _until(complete, "every stream ended")
    master = output.live_master()
    assert master is not None
    live = {name: output.live_playlist(name) or "" for name in ("sd", "audio")}
    validate_playlists({"master": master, **live})
    assert output.track("source") is None  # recorded, not shown

    key = await output.finalize(storage)
    assert key == "recordings/7/recording.mp4"
    assert await storage.list("live/") == []
    assert _ffprobe_duration(storage.root / "recordings/7/sd/index.m3u8") == pytest.approx(
        5.0, abs=0.3)
    with av.open(str(storage.root / key)) as container:
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(5.0, abs=0.5)
        assert sum(1 for _ in container.decode(video=0)) == pytest.approx(5 * FPS, abs=3)
