"""SegmentReceiver: routing by token, name checks, the body cap, and a real ffmpeg PUTting."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import pytest

from transcode.hls_playlist import parse_media_playlist
from transcode.ladder import AAC_LC, Rendition
from transcode.segment_receiver import SegmentReceiver, epoch_name
from transcode.session_output import SessionOutput
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue

SD = Rendition("sd", "SD", 320, 180, 500, 96, True, f"avc1.64001e,{AAC_LC}", fps=30.0)


class RecordingOutput(SessionOutput):
    """A SessionOutput that only records what the receiver hands it."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(1, _NoQueue(), window=3, work_dir=work_dir)
        self.received: list[tuple[str, str, str, bytes]] = []

    async def receive(self, epoch: str, rendition: str, filename: str, data: bytes) -> None:
        self.received.append((epoch, rendition, filename, data))


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
    server = SegmentReceiver(max_body=100_000)
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


async def test_routes_uploads_by_token(receiver: SegmentReceiver, http: aiohttp.ClientSession,
                                       tmp_path: Path) -> None:
    one, two = RecordingOutput(tmp_path / "1"), RecordingOutput(tmp_path / "2")
    base_one = receiver.register("tok-one", one)
    base_two = receiver.register("tok_two", two)
    assert base_one == f"http://127.0.0.1:{receiver.port}/ingest/tok-one"
    assert await _status(http, "PUT", f"{base_one}/01/sd/seg_00003.ts", b"seg") == 201
    assert await _status(http, "POST", f"{base_two}/2/audio/index.m3u8", b"pl") == 201
    assert await _status(http, "DELETE", f"{base_one}/1/sd/seg_00000.ts", None) == 204
    assert one.received == [(epoch_name("tok-one", 1), "sd", "seg_00003.ts", b"seg")]
    assert two.received == [("tok_two/2", "audio", "index.m3u8", b"pl")]
    receiver.unregister("tok-one")
    assert await _status(http, "PUT", f"{base_one}/1/sd/seg_00004.ts") == 404
    assert len(one.received) == 1
    with pytest.raises(ValueError):
        receiver.register("tok_two", one)  # taken by another session
    with pytest.raises(ValueError):
        receiver.register("bad/token", one)


async def test_unknown_token_and_bad_names(receiver: SegmentReceiver,
                                           http: aiohttp.ClientSession, tmp_path: Path) -> None:
    output = RecordingOutput(tmp_path)
    base = receiver.register("tok", output)
    root = f"http://127.0.0.1:{receiver.port}/ingest"
    assert await _status(http, "PUT", f"{root}/guess/1/sd/seg_00000.ts") == 404
    assert await _status(http, "DELETE", f"{root}/guess/1/sd/seg_00000.ts", None) == 404
    for bad in ("x1/sd/seg_00000.ts", "1/SD/seg_00000.ts", "1/sd/seg_0.mp4",
                "1/sd/index.m3u", "1/sd/evil.sh", "1/sd/seg_00000.ts.m3u8",
                "1/s-d/index.m3u8", "1/sd/..%2Findex.m3u8"):
        assert await _status(http, "PUT", f"{base}/{bad}") == 400, bad
    assert await _status(http, "PUT", f"{base}/1/index.m3u8") == 404
    assert await _status(http, "PUT", f"{base}/1/sd/x/index.m3u8") == 404
    assert await _status(http, "GET", f"{base}/1/sd/index.m3u8", None) == 405
    assert output.received == []


async def test_body_cap(receiver: SegmentReceiver, http: aiohttp.ClientSession,
                        tmp_path: Path) -> None:
    output = RecordingOutput(tmp_path)
    base = receiver.register("tok", output)
    assert await _status(http, "PUT", f"{base}/1/sd/seg_00000.ts", b"x" * 100_000) == 201
    assert await _status(http, "PUT", f"{base}/1/sd/seg_00001.ts", b"x" * 100_001) == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: ffmpeg's way
        for _ in range(30):
            yield b"y" * 10_000

    async with http.put(f"{base}/1/sd/seg_00002.ts", data=chunked()) as response:
        assert response.status == 413
    assert [r[2] for r in output.received] == ["seg_00000.ts"]


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout
    return float(json.loads(out)["format"]["duration"])


async def test_real_ffmpeg_put(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    queue = UploadQueue(storage, tmp_path / "spool", retry_initial=0.05)
    await queue.start()
    receiver = SegmentReceiver()
    await receiver.start()
    try:
        output = SessionOutput(7, queue, window=3, work_dir=tmp_path / "work")
        base = receiver.register("worker-token", output)
        output.start_epoch(epoch_name("worker-token", 1), [SD])

        def hls(name: str) -> list[str]:
            # As the worker's command: PUT, the whole list rewritten after each segment, and no
            # kept-alive connection (with one, ffmpeg 5.1 can exit before its last PUT is sent).
            return ["-t", "5", "-f", "hls", "-method", "PUT", "-http_persistent", "0",
                    "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "event",
                    "-hls_segment_filename", f"{base}/1/{name}/seg_%05d.ts",
                    f"{base}/1/{name}/index.m3u8"]

        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "30", "-c:a", "aac", *hls("sd"),
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "30", "-c:a", "aac", *hls("source"),
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        # ffmpeg exits without waiting for the answer to its last PUT, which may still be
        # being taken: wait (bounded) for the window to move, then for storage.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            assert await queue.flush(10)
            stored = await storage.get("live/7/sd/index.m3u8") or b""
            live = parse_media_playlist(stored.decode())
            if live.segments and live.segments[-1].uri == "000004.ts":
                break
            assert asyncio.get_running_loop().time() < deadline, live
            await asyncio.sleep(0.05)
        assert [s.uri for s in live.segments] == ["000002.ts", "000003.ts", "000004.ts"]
        assert await storage.get("live/7/source/index.m3u8") is None  # recording only

        key = await output.finalize(storage)
        assert key == "recordings/7/recording.mp4"
        assert await storage.list("live/") == []
        assert _ffprobe_duration(storage.root / "recordings/7/master.m3u8") == pytest.approx(
            5.0, abs=0.3)
        with av.open(str(storage.root / key)) as container:
            assert container.duration is not None
            assert container.duration / av.time_base == pytest.approx(5.0, abs=0.5)
            assert sum(1 for _ in container.decode(video=0)) == pytest.approx(150, abs=3)
    finally:
        await receiver.close()
        await queue.close(10)
