"""SessionOutput: real ffmpeg segments PUT over HTTP, in ffmpeg's order, become our HLS.

The pieces are the real ones: SegmentReceiver, UploadQueue and LocalStorage. A spy in
front of the queue records the order of operations.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import av
import pytest

from transcode.hls_playlist import parse_media_playlist
from transcode.ladder import AAC_LC, Rendition
from transcode.mp4_export import Mp4ExportError, export_mp4
from transcode.recording_journal import JOURNAL_NAME
from transcode.segment_receiver import SegmentReceiver, epoch_name
from transcode.session_output import SessionOutput
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue

SID = 42
SD = Rendition("sd", "SD", 320, 180, 500, 96, True, f"avc1.64001e,{AAC_LC}", fps=30.0)
SOURCE = Rendition("source", "source", 320, 180, 0, 0, True, f"avc1.64001e,{AAC_LC}",
                   copy=True, fps=30.0)
CLIP_SECONDS = {"a": 6, "b": 4}


def _make_clip(folder: Path, seconds: int, frequency: int) -> Path:
    folder.mkdir(parents=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
         "-c:a", "aac", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
         "-hls_segment_filename", str(folder / "seg_%05d.ts"), str(folder / "index.m3u8")],
        check=True, timeout=60)
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {"a": _make_clip(root / "a", 6, 440), "b": _make_clip(root / "b", 4, 660)}


class SpyQueue:
    """The real queue, with a log of what was submitted, in order."""

    def __init__(self, queue: UploadQueue) -> None:
        self.queue = queue
        self.ops: list[tuple[str, str, bytes]] = []

    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        self.ops.extend(("put", k, data) for k in (key, *also))
        return self.queue.put(key, data, content_type, also=also)

    def delete(self, key: str) -> bool:
        self.ops.append(("delete", key, b""))
        return self.queue.delete(key)

    def delete_prefix(self, prefix: str) -> bool:
        self.ops.append(("delete_prefix", prefix, b""))
        return self.queue.delete_prefix(prefix)

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return await self.queue.flush(timeout)


@dataclass
class Rig:
    storage: LocalStorage
    queue: SpyQueue
    receiver: SegmentReceiver
    http: aiohttp.ClientSession
    work_dir: Path

    def output(self, window: int = 3) -> SessionOutput:
        # Every segment rewrites the recording playlist here, so each step can be checked.
        return SessionOutput(SID, self.queue, window=window, work_dir=self.work_dir,
                             recording_playlist_every=1)

    async def text(self, key: str) -> str:
        data = await self.storage.get(key)
        assert data is not None, key
        return data.decode()

    async def keys(self, prefix: str) -> list[str]:
        return await self.storage.list(prefix)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    storage = LocalStorage(tmp_path / "store")
    queue = UploadQueue(storage, tmp_path / "spool", retry_initial=0.05)
    await queue.start()
    receiver = SegmentReceiver()
    await receiver.start()
    async with aiohttp.ClientSession() as http:
        yield Rig(storage, SpyQueue(queue), receiver, http, tmp_path / "work")
    await receiver.close()
    await queue.close(10)


class Replay:
    """Uploads a finished ffmpeg HLS folder the way ffmpeg wrote it: a segment, then the
    playlist naming every segment so far (ENDLIST after the last)."""

    def __init__(self, rig: Rig, base_url: str, run: int, rendition: str, clip: Path) -> None:
        self.rig, self.clip = rig, clip
        self.url = f"{base_url}/{run}/{rendition}"
        self.segments = parse_media_playlist((clip / "index.m3u8").read_text()).segments

    def __len__(self) -> int:
        return len(self.segments)

    def playlist(self, count: int, *, ended: bool) -> bytes:
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
                 "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT"]
        for segment in self.segments[:count]:
            lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return ("\n".join(lines) + "\n").encode()

    async def put(self, name: str, data: bytes) -> None:
        async with self.rig.http.put(f"{self.url}/{name}", data=data) as response:
            assert response.status == 201, await response.text()

    async def segment(self, index: int) -> None:
        uri = self.segments[index].uri
        await self.put(uri, (self.clip / uri).read_bytes())

    async def step(self, index: int) -> None:
        await self.segment(index)
        await self.put("index.m3u8", self.playlist(index + 1, ended=index == len(self) - 1))

    async def all(self) -> None:
        for index in range(len(self)):
            await self.step(index)


def _live_numbers(keys: list[str], rendition: str) -> list[int]:
    prefix = f"live/{SID}/{rendition}/"
    return [int(k[len(prefix):-3]) for k in keys if k.startswith(prefix) and k.endswith(".ts")]


def _ffprobe(path: str) -> dict[str, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration,start_time",
         "-of", "json", path], check=True, capture_output=True, timeout=60).stdout
    fmt = json.loads(out)["format"]
    return {k: float(v) for k, v in fmt.items()}


def _check_order(ops: list[tuple[str, str, bytes]]) -> None:
    """Every segment a playlist names was queued (and not deleted) before the playlist."""
    stored: set[str] = set()
    for kind, key, data in ops:
        assert kind == "put" or not key.startswith("recordings/"), f"{kind} {key}"
        if kind == "delete":
            stored.discard(key)
        elif kind == "put" and key.endswith("/index.m3u8"):
            folder = key.rsplit("/", 1)[0]
            for segment in parse_media_playlist(data.decode()).segments:
                assert f"{folder}/{segment.uri}" in stored, f"{key} names a missing segment"
        elif kind == "put":
            stored.add(key)


async def test_live_window_slides_and_recording_keeps_everything(
        rig: Rig, clips: dict[str, Path]) -> None:
    output = rig.output(window=3)
    base = rig.receiver.register("tok-a", output)
    output.start_epoch(epoch_name("tok-a", 1), [SD])
    replay = Replay(rig, base, 1, "sd", clips["a"])
    for index in range(len(replay)):
        await replay.step(index)
        assert await rig.queue.flush(10)
        count = index + 1
        live = parse_media_playlist(await rig.text(f"live/{SID}/sd/index.m3u8"))
        first = max(0, count - 3)
        assert live.media_sequence == first
        assert [s.uri for s in live.segments] == [f"{n:06d}.ts" for n in range(first, count)]
        assert not live.ended
        keys = await rig.keys(f"live/{SID}/")
        # The window plus two spare segments stay; older live segments are gone.
        assert _live_numbers(keys, "sd") == list(range(max(0, count - 5), count))
        recording = parse_media_playlist(await rig.text(f"recordings/{SID}/sd/index.m3u8"))
        assert len(recording.segments) == count
        rec_keys = await rig.keys(f"recordings/{SID}/sd/")
        assert [k for k in rec_keys if k.endswith(".ts")] == [
            f"recordings/{SID}/sd/{n:06d}.ts" for n in range(count)]
    assert count == 6
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in await rig.text(f"recordings/{SID}/sd/index.m3u8")
    master = await rig.text(f"live/{SID}/master.m3u8")
    assert master == await rig.text(f"recordings/{SID}/master.m3u8")
    assert "sd/index.m3u8" in master.splitlines()
    _check_order(rig.queue.ops)
    assert not any(kind != "put" and key.startswith("recordings/")
                   for kind, key, _ in rig.queue.ops)


async def test_two_epochs_number_continuously_with_a_discontinuity(
        rig: Rig, clips: dict[str, Path]) -> None:
    output = rig.output(window=3)
    base_a = rig.receiver.register("tok-a", output)
    base_b = rig.receiver.register("tok-b", output)  # the publisher reconnected
    output.start_epoch(epoch_name("tok-a", 1), [SD])
    await Replay(rig, base_a, 1, "sd", clips["a"]).all()
    # ffmpeg died mid-segment: this one is never named by a playlist.
    await Replay(rig, base_a, 1, "sd", clips["a"]).put("seg_00006.ts", b"\x47" * 188)
    output.start_epoch(epoch_name("tok-b", 1), [SD])
    second = Replay(rig, base_b, 1, "sd", clips["b"])
    await second.step(0)
    assert await rig.queue.flush(10)
    live = await rig.text(f"live/{SID}/sd/index.m3u8")
    lines = live.splitlines()
    assert "#EXT-X-MEDIA-SEQUENCE:4" in lines
    assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in live
    assert lines[lines.index("000006.ts") - 2] == "#EXT-X-DISCONTINUITY"
    # The old run's playlist arriving late cannot slip its stray segment in.
    stale = Replay(rig, base_a, 1, "sd", clips["a"])
    stale.segments = (*stale.segments, replace(stale.segments[-1], uri="seg_00006.ts"))
    await stale.put("index.m3u8", stale.playlist(7, ended=True))
    for index in range(1, len(second)):
        await second.step(index)
    assert await rig.queue.flush(10)
    live_list = parse_media_playlist(await rig.text(f"live/{SID}/sd/index.m3u8"))
    assert live_list.media_sequence == 7
    assert live_list.discontinuity_sequence == 1  # the discontinuity at 6 slid out
    assert [s.uri for s in live_list.segments] == ["000007.ts", "000008.ts", "000009.ts"]
    recording = parse_media_playlist(await rig.text(f"recordings/{SID}/sd/index.m3u8"))
    assert [s.uri for s in recording.segments] == [f"{n:06d}.ts" for n in range(10)]
    assert [s.discontinuity for s in recording.segments] == [False] * 6 + [True] + [False] * 3
    # The stray segment never reached storage; the new run's first segment did, as 6.
    stored_6 = await rig.storage.get(f"recordings/{SID}/sd/000006.ts")
    assert stored_6 == (clips["b"] / "seg_00000.ts").read_bytes()
    _check_order(rig.queue.ops)


async def test_segment_after_its_playlist_and_duplicates(
        rig: Rig, clips: dict[str, Path]) -> None:
    output = rig.output(window=3)
    base = rig.receiver.register("tok-a", output)
    output.start_epoch(epoch_name("tok-a", 1), [SD])
    replay = Replay(rig, base, 1, "sd", clips["a"])
    await replay.put("index.m3u8", replay.playlist(1, ended=False))  # overtook its segment
    await replay.segment(0)
    await replay.segment(0)  # a retried upload
    await replay.step(1)
    assert await rig.queue.flush(10)
    recording = parse_media_playlist(await rig.text(f"recordings/{SID}/sd/index.m3u8"))
    assert [s.uri for s in recording.segments] == ["000000.ts", "000001.ts"]
    assert await rig.storage.get(f"recordings/{SID}/sd/000001.ts") == (
        clips["a"] / "seg_00001.ts").read_bytes()
    _check_order(rig.queue.ops)


def _mp4_seconds(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as container:
        assert container.duration is not None
        seconds = container.duration / av.time_base
        frames = sum(1 for _ in container.decode(video=0))
    return seconds, frames


async def test_finalize_makes_vod_and_mp4(rig: Rig, clips: dict[str, Path],
                                          tmp_path: Path) -> None:
    output = rig.output(window=3)
    base = rig.receiver.register("tok-a", output)
    output.start_epoch(epoch_name("tok-a", 1), [SD])
    # The ladder rung and, beside it, the recording-only source.
    sd = Replay(rig, base, 1, "sd", clips["a"])
    source = Replay(rig, base, 1, "source", clips["a"])
    for index in range(len(sd)):
        await sd.step(index)
        await source.step(index)
    key = await output.finalize(rig.storage)
    assert key == f"recordings/{SID}/recording.mp4"
    assert await rig.keys(f"live/{SID}/") == []
    assert not any(k.startswith(f"live/{SID}/source/") for _, k, _ in rig.queue.ops)
    recordings = await rig.keys(f"recordings/{SID}/")
    assert f"recordings/{SID}/source/index.m3u8" in recordings
    for rendition in ("sd", "source"):
        text = await rig.text(f"recordings/{SID}/{rendition}/index.m3u8")
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert text.splitlines()[-1] == "#EXT-X-ENDLIST"
    master = await rig.text(f"recordings/{SID}/master.m3u8")
    assert [line for line in master.splitlines() if not line.startswith("#")] == [
        "sd/index.m3u8"]
    # A viewer opens the recording as it is stored.
    probed = _ffprobe(str(rig.storage.root / "recordings" / str(SID) / "master.m3u8"))
    assert probed["duration"] == pytest.approx(6.0, abs=0.3)
    seconds, frames = _mp4_seconds(rig.storage.root / "recordings" / str(SID) / "recording.mp4")
    assert seconds == pytest.approx(6.0, abs=0.5)
    assert frames == pytest.approx(180, abs=3)
    assert not rig.work_dir.exists()
    _check_order(rig.queue.ops)


async def test_finalize_across_two_epochs(rig: Rig, clips: dict[str, Path]) -> None:
    output = rig.output(window=3)
    base = rig.receiver.register("tok-a", output)
    output.start_epoch(epoch_name("tok-a", 1), [SOURCE])  # passthrough: source is live
    await Replay(rig, base, 1, "source", clips["a"]).all()
    output.start_epoch(epoch_name("tok-a", 2), [SOURCE])  # ffmpeg restarted
    await Replay(rig, base, 2, "source", clips["b"]).all()
    assert await rig.queue.flush(10)
    assert _live_numbers(await rig.keys(f"live/{SID}/"), "source") == list(range(5, 10))
    key = await output.finalize(rig.storage)
    assert key is not None
    root = rig.storage.root
    probed = _ffprobe(str(root / "recordings" / str(SID) / "source" / "index.m3u8"))
    assert probed["duration"] == pytest.approx(10.0, abs=0.3)
    seconds, frames = _mp4_seconds(root / key)
    assert seconds == pytest.approx(10.0, abs=0.5)
    assert frames == pytest.approx(300, abs=5)
    with av.open(str(root / key)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        times = [f.time for f in container.decode(video=0) if f.time is not None]
    assert times == sorted(times)  # no jump back at the reconnect
    assert await rig.keys(f"live/{SID}/") == []
    assert len([k for k in await rig.keys(f"recordings/{SID}/source/") if k.endswith(".ts")]) == 10


async def test_finalize_with_nothing_received(rig: Rig) -> None:
    output = rig.output()
    output.start_epoch(epoch_name("tok-a", 1), [SD])
    assert await output.finalize(rig.storage) is None
    assert await rig.keys("live/") == []
    assert await rig.keys("recordings/") == []
    with pytest.raises(RuntimeError):
        await output.finalize(rig.storage)


async def test_mp4_export_failure_reports_ffmpeg(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"not a transport stream at all" * 10)
    out = tmp_path / "out.mp4"
    with pytest.raises(Mp4ExportError, match="ffmpeg exited") as caught:
        await export_mp4([junk], out)
    assert "junk.ts" in str(caught.value)  # ffmpeg's own words are passed on
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["junk.ts"]  # no list file, no partial MP4
    with pytest.raises(ValueError):
        await export_mp4([], out)


class KeyLog:
    """A queue that only notes which keys were put."""

    def __init__(self) -> None:
        self.puts: list[str] = []

    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        self.puts.extend((key, *also))
        return True

    def delete(self, key: str) -> bool:
        return True

    def delete_prefix(self, prefix: str) -> bool:
        return True

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return True


async def test_recording_playlists_are_rewritten_only_now_and_then_while_live(
    tmp_path: Path,
) -> None:
    """A long class must not resend its whole recording playlist after every segment."""
    queue = KeyLog()
    output = SessionOutput(SID, queue, window=3, work_dir=tmp_path / "work",
                           recording_playlist_every=5)
    output.start_epoch("t/1", [SD])
    entries = ""
    for n in range(12):
        await output.receive("t/1", "sd", f"seg_{n:05d}.ts", b"\x47" * 188)
        entries += f"#EXTINF:2.000000,\nseg_{n:05d}.ts\n"
        text = f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n{entries}"
        await output.receive("t/1", "sd", "index.m3u8", text.encode())
    live = [key for key in queue.puts if key == f"live/{SID}/sd/index.m3u8"]
    recording = [key for key in queue.puts if key == f"recordings/{SID}/sd/index.m3u8"]
    assert len(live) == 12
    assert len(recording) == 2  # after segments 5 and 10


class RefusingStorage(LocalStorage):
    """Takes playlists and segments, but never the MP4 (storage went down at the end)."""

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        raise StorageError("storage unreachable")


async def test_an_mp4_that_cannot_be_stored_is_kept_on_disk(
    rig: Rig, clips: dict[str, Path]
) -> None:
    output = rig.output(window=3)
    base = rig.receiver.register("tok-a", output)
    output.start_epoch(epoch_name("tok-a", 1), [SOURCE])
    await Replay(rig, base, 1, "source", clips["a"]).all()
    with pytest.raises(StorageError):
        await output.finalize(RefusingStorage(rig.storage.root))
    kept = rig.work_dir.parent / "unsent" / f"session-{SID}.mp4"
    seconds, _ = _mp4_seconds(kept)
    assert seconds == pytest.approx(6.0, abs=0.5)


def _drop_last_journal_line(work_dir: Path) -> None:
    journal = work_dir / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))


async def test_an_output_after_a_crash_numbers_on_and_overwrites_nothing(
        rig: Rig, clips: dict[str, Path]) -> None:
    """The process died mid-class (no finalize); a new process's output for the same
    session takes up the work folder, the store and the spool: the next run's segments
    follow the earlier ones, nothing stored is overwritten, and the recording has both."""
    first = rig.output(window=3)
    base_a = rig.receiver.register("tok-a", first)
    first.start_epoch(epoch_name("tok-a", 1), [SOURCE])
    await Replay(rig, base_a, 1, "source", clips["a"]).all()
    assert await rig.queue.flush(10)
    rig.receiver.unregister("tok-a")
    before = {key: await rig.storage.get(key)
              for key in await rig.keys(f"recordings/{SID}/source/") if key.endswith(".ts")}
    assert len(before) == 6
    # It died right after queueing the last segment, before noting it in the journal.
    _drop_last_journal_line(rig.work_dir)

    second = rig.output(window=3)
    assert await second.resume(rig.storage, rig.queue.queue.queued_keys()) == 6
    base_b = rig.receiver.register("tok-b", second)
    second.start_epoch(epoch_name("tok-b", 1), [SOURCE])
    await Replay(rig, base_b, 1, "source", clips["b"]).all()
    key = await second.finalize(rig.storage)
    assert key is not None
    for stored_key, data in before.items():
        assert await rig.storage.get(stored_key) == data, f"{stored_key} was overwritten"
    recording = parse_media_playlist(await rig.text(f"recordings/{SID}/source/index.m3u8"))
    assert recording.ended
    assert [s.uri for s in recording.segments] == [f"{n:06d}.ts" for n in range(10)]
    assert [s.discontinuity for s in recording.segments] == [False] * 6 + [True] + [False] * 3
    root = rig.storage.root
    probed = _ffprobe(str(root / "recordings" / str(SID) / "source" / "index.m3u8"))
    assert probed["duration"] == pytest.approx(10.0, abs=0.5)
    seconds, frames = _mp4_seconds(root / key)  # both runs' source, in order
    assert seconds == pytest.approx(10.0, abs=0.5)
    assert frames == pytest.approx(300, abs=5)


async def test_resumed_twice_the_journal_stays_in_step(rig: Rig) -> None:
    """A resume that corrected the journal (a segment stored but never noted) keeps it in
    step, so a second crash and resume still knows every segment and discontinuity."""

    async def run(output: SessionOutput, epoch: str, count: int) -> None:
        output.start_epoch(epoch, [SD])
        entries = ""
        for n in range(count):
            await output.receive(epoch, "sd", f"seg_{n:05d}.ts", bytes([n]) * 188)
            entries += f"#EXTINF:1.500000,\nseg_{n:05d}.ts\n"
            text = f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n{entries}"
            await output.receive(epoch, "sd", "index.m3u8", text.encode())
        assert await rig.queue.flush(10)

    def output() -> SessionOutput:
        # The stored recording playlist is rarely rewritten: the journal is what counts.
        return SessionOutput(SID, rig.queue, window=3, work_dir=rig.work_dir,
                             recording_playlist_every=1000)

    await run(output(), "a/1", 4)
    _drop_last_journal_line(rig.work_dir)
    second = output()
    assert await second.resume(rig.storage, rig.queue.queue.queued_keys()) == 4
    await run(second, "b/1", 3)
    third = output()
    assert await third.resume(rig.storage, rig.queue.queue.queued_keys()) == 7
    await run(third, "c/1", 2)
    await third.finalize(rig.storage)
    recording = parse_media_playlist(await rig.text(f"recordings/{SID}/sd/index.m3u8"))
    assert [s.uri for s in recording.segments] == [f"{n:06d}.ts" for n in range(9)]
    assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == [4, 7]
    assert [s.duration for s in recording.segments] == [1.5] * 9
    for n, first_byte in enumerate([0, 1, 2, 3, 0, 1, 2, 0, 1]):
        assert await rig.storage.get(f"recordings/{SID}/sd/{n:06d}.ts") == bytes(
            [first_byte]) * 188
