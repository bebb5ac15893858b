"""SessionOutput: the worker's real ffmpeg fragmented MP4, fed as the receiver feeds it
(random chunks, renditions side by side), becomes LL-HLS live and a recording in storage.

The media comes from `transcode.command.ladder_command` itself (written to files, see
tests/support/cmaf_runs.py); the queue is the real UploadQueue over LocalStorage, with a
spy in front that records the order of operations. Every playlist read is validated.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from support.cmaf_runs import (
    AUDIO,
    SD,
    SOURCE,
    SOURCE_INFO,
    Packaged,
    decode,
    feed_run,
    make_flv,
    package_stream,
    run_ladder,
)
from support.hls_validator import validate_playlists
from transcode.hls_playlist import MediaPlaylist, parse_media_playlist
from transcode.ladder import plan_passthrough
from transcode.mp4_export import Mp4ExportError, export_mp4
from transcode.recording_journal import JOURNAL_NAME
from transcode.session_output import SessionOutput
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue
from transcode.stored_journal import TAIL_NAME

SID = 42
SEGMENT = 2.0
FPS = 30
REC = f"recordings/{SID}"


@dataclass(frozen=True)
class Runs:
    """Two runs of the worker's ffmpeg: 6 s then 4 s of a publisher (different tones).
    Each holds "sd" (video only), "audio" and "source" (the remuxed source)."""

    a: dict[str, bytes]
    b: dict[str, bytes]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    return Runs(run_ladder(make_flv(root / "a.flv", 6, 440), [SD, AUDIO], root / "a"),
                run_ladder(make_flv(root / "b.flv", 4, 660), [SD, AUDIO], root / "b"))


def package(data: bytes, segment_seconds: float = SEGMENT) -> Packaged:
    """What one stream should become: its init and segments, the stream fed whole."""
    return package_stream(data, segment_seconds)


class SpyQueue:
    """The real queue, with a log of what was submitted, in order; it refuses `refuse`."""

    def __init__(self, queue: UploadQueue) -> None:
        self.queue = queue
        self.ops: list[tuple[str, str, bytes]] = []
        self.refuse: set[str] = set()

    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        if key in self.refuse:
            return False
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
    work_dir: Path
    outputs: list[SessionOutput] = field(default_factory=list)

    def output(self, every: int = 1, segment_seconds: float = SEGMENT,
               quality: str = "all") -> SessionOutput:
        # By default every segment rewrites the recording playlist, so each step shows.
        return SessionOutput(SID, self.queue, work_dir=self.work_dir,
                             segment_seconds=segment_seconds, recording_playlist_every=every,
                             recording_quality=quality)

    async def get(self, key: str) -> bytes:
        data = await self.storage.get(key)
        assert data is not None, key
        return data

    async def playlist(self, rendition: str) -> tuple[str, MediaPlaylist]:
        text = (await self.get(f"{REC}/{rendition}/index.m3u8")).decode()
        return text, parse_media_playlist(text)

    async def keys(self, prefix: str) -> list[str]:
        return await self.storage.list(prefix)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    storage = LocalStorage(tmp_path / "store")
    queue = UploadQueue(storage, tmp_path / "spool", retry_initial=0.05)
    await queue.start()
    yield Rig(storage, SpyQueue(queue), tmp_path / "work")
    await queue.close(10)


def _check_ops(ops: list[tuple[str, str, bytes]]) -> None:
    """Media is stored once, under recordings/ only; a stored playlist names only
    segments and inits queued before it; nothing under recordings/ is deleted but the
    journal tails (rewritten while live, removed once the VOD playlists name all)."""
    stored: set[str] = set()
    for kind, key, data in ops:
        assert key.startswith("recordings/") or kind == "delete_prefix", f"{kind} {key}"
        if key.endswith("/" + TAIL_NAME):
            continue
        assert kind == "put" or not key.startswith("recordings/"), f"{kind} {key}"
        if key.endswith(".m3u8"):
            if key.endswith("/index.m3u8"):
                folder = key.rsplit("/", 1)[0]
                for segment in parse_media_playlist(data.decode()).segments:
                    if not segment.gap:
                        assert f"{folder}/{segment.uri}" in stored, f"{key}: {segment.uri}"
                    if segment.init_uri:
                        assert f"{folder}/{segment.init_uri}" in stored, key
            continue
        assert key not in stored, f"{key} stored twice"
        stored.add(key)


def _uris(count: int, start: int = 0) -> list[str]:
    return [f"{n:06d}.m4s" for n in range(start, start + count)]


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
         str(path)], check=True, capture_output=True, timeout=60).stdout
    return float(json.loads(out)["format"]["duration"])


def _mp4(path: Path) -> tuple[float, int, list[float]]:
    """The MP4's duration, its video frames and their times, as a viewer's player has it."""
    with av.open(str(path)) as container:
        assert container.duration is not None
        assert container.streams.audio[0].codec_context.name == "aac"
        times = [f.time for f in container.decode(video=0) if f.time is not None]
        return container.duration / av.time_base, len(times), times


async def test_live_playlist_is_the_whole_class_with_parts_near_the_edge(
        rig: Rig, runs: Runs) -> None:
    """Mid-run the live playlists (from memory) list every segment from 0, parts and a
    preload hint at the edge, the other renditions' reports; they validate; parts decode.
    At the end of the run each segment is stored once under recordings/, and decodes."""
    output = rig.output()
    output.start_epoch("tok-a/1", [SD, AUDIO])
    # Three quarters of each stream so far (cut mid-box): the class is going on.
    cut = {name: len(data) * 3 // 4 for name, data in runs.a.items()}
    await feed_run(output, "tok-a/1", {n: d[:cut[n]] for n, d in runs.a.items()}, seed=1,
                   end=False)
    master = output.live_master()
    assert master is not None
    live = {name: output.live_playlist(name) for name in ("sd", "audio")}
    assert output.live_playlist("source") is None  # the source is recorded, not shown
    texts = {"master": master, **{k: v for k, v in live.items() if v is not None}}
    validate_playlists(texts)
    sd_text = texts["sd"]
    sd = parse_media_playlist(sd_text)
    assert sd.media_sequence == 0 and not sd.ended
    assert [s.uri for s in sd.segments] == _uris(2)  # the third is still being made
    assert sd.segments[0].init_uri == "init_000000.mp4"
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="000002.' in sd_text
    assert '#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8"' in sd_text
    assert "#EXT-X-PART:" in sd_text and "#EXT-X-PART-INF:PART-TARGET=" in sd_text

    track = output.track("sd")
    assert track is not None and track.open_number == 2
    init = track.init_data("init_000000.mp4")
    assert init is not None
    for number in (0, 1):  # a complete segment is its parts, and decodes alone
        parts: list[bytes] = []
        while (part := track.part_data(number, len(parts))) is not None:
            parts.append(part)
        segment = track.segment_data(number)
        assert segment is not None and b"".join(parts) == segment
        decoded = decode(init, segment)
        assert (decoded.width, decoded.height) == (320, 180)
        assert decoded.frames == pytest.approx(SEGMENT * FPS, abs=1)
    # The open segment's parts so far play from its first (independent) part on.
    open_parts: list[bytes] = []
    while (part := track.part_data(2, len(open_parts))) is not None:
        open_parts.append(part)
    assert open_parts
    assert decode(init, *open_parts).frames >= len(open_parts) * 5

    await feed_run(output, "tok-a/1", {n: d[cut[n]:] for n, d in runs.a.items()}, seed=2)
    assert await rig.queue.flush(10)
    validate_playlists({"sd": output.live_playlist("sd") or ""})
    frames = 0
    for rendition in ("sd", "audio", "source"):
        count = len(package(runs.a[rendition]).segments)
        assert count >= 3
        keys = await rig.keys(f"{REC}/{rendition}/")
        assert keys == [f"{REC}/{rendition}/{name}" for name in
                        [*_uris(count), "index.m3u8", "init_000000.mp4", TAIL_NAME]], keys
        init = await rig.get(f"{REC}/{rendition}/init_000000.mp4")
        for uri in _uris(count):
            decoded = decode(init, await rig.get(f"{REC}/{rendition}/{uri}"))
            if rendition == "sd":
                assert (decoded.width, decoded.height) == (320, 180)
                frames += decoded.frames
            if rendition == "audio":
                assert decoded.audio and decoded.width is None
        text, recording = await rig.playlist(rendition)
        validate_playlists({rendition: text})
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and not recording.ended
        assert [s.uri for s in recording.segments] == _uris(count)
    assert frames == pytest.approx(6 * FPS, abs=2)
    assert (await rig.get(f"{REC}/master.m3u8")).decode() == master
    assert await rig.keys("live/") == []
    _check_ops(rig.queue.ops)


async def test_two_runs_number_on_with_a_discontinuity_and_a_new_map(
        rig: Rig, runs: Runs) -> None:
    """The publisher reconnected: the new run's segments follow the old ones, the first
    with EXT-X-DISCONTINUITY and its own init (EXT-X-MAP); the old run talking late
    changes nothing; stored segments are exactly the runs' own, in order."""
    output = rig.output()
    output.start_epoch("tok-a/1", [SD, AUDIO])
    await feed_run(output, "tok-a/1", runs.a, seed=2)
    output.start_epoch("tok-b/1", [SD, AUDIO])
    cut = {name: len(data) * 3 // 4 for name, data in runs.b.items()}
    await feed_run(output, "tok-b/1", {n: d[:cut[n]] for n, d in runs.b.items()}, seed=3,
                   end=False)
    text = output.live_playlist("sd")
    assert text is not None
    validate_playlists({"sd": text, "audio": output.live_playlist("audio") or ""})
    lines = text.splitlines()
    first_b = len(package(runs.a["sd"]).segments)  # run b's first segment
    new_map = f'#EXT-X-MAP:URI="init_{first_b:06d}.mp4"'
    assert lines.index("#EXT-X-DISCONTINUITY") < lines.index(new_map)
    assert lines.index(new_map) < lines.index(f"{first_b:06d}.m4s")
    assert "#EXT-X-MEDIA-SEQUENCE:0" in lines
    assert parse_media_playlist(text).segments[0].uri == "000000.m4s"
    before = {name: output.live_playlist(name) for name in ("sd", "audio")}
    await feed_run(output, "tok-a/1", runs.a, seed=4)  # the old run's streams, late
    assert {name: output.live_playlist(name) for name in ("sd", "audio")} == before
    await feed_run(output, "tok-b/1", {n: d[cut[n]:] for n, d in runs.b.items()}, seed=5)
    assert await rig.queue.flush(10)

    live = output.live_playlist("sd")
    assert live is not None
    validate_playlists({"sd": live})
    for rendition in ("sd", "audio", "source"):
        a, b = package(runs.a[rendition]), package(runs.b[rendition])
        count = len(a.segments) + len(b.segments)
        text, recording = await rig.playlist(rendition)
        validate_playlists({rendition: text})
        assert [s.uri for s in recording.segments] == _uris(count)
        first_b = len(a.segments)
        assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == [first_b]
        assert {n: s.init_uri for n, s in enumerate(recording.segments) if s.init_uri} == {
            0: "init_000000.mp4", first_b: f"init_{first_b:06d}.mp4"}
        assert await rig.get(f"{REC}/{rendition}/init_000000.mp4") == a.init
        assert await rig.get(f"{REC}/{rendition}/init_{first_b:06d}.mp4") == b.init
        for n, data in enumerate([*a.segments, *b.segments]):
            assert await rig.get(f"{REC}/{rendition}/{n:06d}.m4s") == data, (rendition, n)
        assert sum(s.duration for s in recording.segments) == pytest.approx(10.0, abs=0.2)
    _check_ops(rig.queue.ops)


async def test_a_segment_the_queue_refuses_becomes_a_gap(rig: Rig, runs: Runs) -> None:
    """A segment the upload queue refused (spool full) is never stored: the live and the
    recording playlists mark it EXT-X-GAP, and the journal remembers it."""
    rig.queue.refuse.add(f"{REC}/sd/000001.m4s")
    output = rig.output()
    output.start_epoch("tok-a/1", [SD, AUDIO])
    await feed_run(output, "tok-a/1", runs.a, seed=5)
    live = output.live_playlist("sd")
    assert live is not None
    validate_playlists({"sd": live})
    lines = live.splitlines()
    assert lines[lines.index("000001.m4s") - 1] == "#EXT-X-GAP"
    assert "#EXT-X-GAP" not in (output.live_playlist("audio") or "")
    journal = [json.loads(line)["segment"] for line in
               (rig.work_dir / JOURNAL_NAME).read_text().splitlines() if "segment" in line]
    assert [(name, n) for name, n, *_, gap in journal if gap] == [("sd", 1)]
    await output.finalize(rig.storage)
    text, recording = await rig.playlist("sd")
    validate_playlists({"sd": text})
    assert [n for n, s in enumerate(recording.segments) if s.gap] == [1]
    assert await rig.storage.get(f"{REC}/sd/000001.m4s") is None
    _check_ops(rig.queue.ops)


async def test_finalize_makes_vod_and_mp4(rig: Rig, runs: Runs) -> None:
    output = rig.output()
    output.start_epoch("tok-a/1", [SD, AUDIO])
    # The ladder and, beside it, the recording-only source.
    await feed_run(output, "tok-a/1", runs.a, seed=6)
    key = await output.finalize(rig.storage)
    assert key == f"{REC}/recording.mp4"
    assert await rig.keys("live/") == []
    texts = {"master": (await rig.get(f"{REC}/master.m3u8")).decode()}
    for rendition in ("sd", "audio", "source"):
        text, recording = await rig.playlist(rendition)
        texts[rendition] = text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and recording.ended
        assert text.splitlines()[-1] == "#EXT-X-ENDLIST"
        assert int(text.split("#EXT-X-VERSION:")[1].split()[0]) >= 6
        assert recording.segments[0].init_uri == "init_000000.mp4"
    validate_playlists(texts)
    uris = [line for line in texts["master"].splitlines() if not line.startswith("#")]
    # The video rung, and the audio rendition as the audio-only choice; not the source.
    assert uris == ["sd/index.m3u8", "audio/index.m3u8"]
    assert 'URI="audio/index.m3u8"' in texts["master"]  # the video rung's audio group
    # A viewer opens the recording as it is stored.
    root = rig.storage.root / "recordings" / str(SID)
    assert _ffprobe_duration(root / "sd" / "index.m3u8") == pytest.approx(6.0, abs=0.3)
    seconds, frames, _ = _mp4(root / "recording.mp4")
    assert seconds == pytest.approx(6.0, abs=0.5)
    assert frames == pytest.approx(6 * FPS, abs=3)
    assert not rig.work_dir.exists()
    _check_ops(rig.queue.ops)


@pytest.mark.parametrize("quality", ["SD", "HD"])
async def test_recording_quality_keeps_its_rungs_and_the_sound(rig: Rig, runs: Runs,
                                                               quality: str) -> None:
    """SD keeps the SD rung and the audio; HD, with a source too short for any HD rung,
    keeps the tallest rung there is. The source remux goes once the MP4 is made of it."""
    output = rig.output(quality=quality)
    output.start_epoch("tok-a/1", [SD, AUDIO], recording=plan_passthrough(SOURCE_INFO)[0])
    await feed_run(output, "tok-a/1", runs.a, seed=6)
    # While live, every rendition is stored as usual (the live ladder is unchanged), once
    # the upload queue has written what it was given.
    assert await rig.queue.flush(30)
    assert await rig.keys(f"{REC}/source/")
    key = await output.finalize(rig.storage)
    assert key == f"{REC}/recording.mp4"
    assert await rig.keys(f"{REC}/source/") == []
    assert await rig.keys(f"{REC}/sd/") and await rig.keys(f"{REC}/audio/")
    master = (await rig.get(f"{REC}/master.m3u8")).decode()
    uris = [line for line in master.splitlines() if not line.startswith("#")]
    assert uris == ["sd/index.m3u8", "audio/index.m3u8"]
    seconds, _, _ = _mp4(rig.storage.root / "recordings" / str(SID) / "recording.mp4")
    assert seconds == pytest.approx(6.0, abs=0.5)


async def test_recording_quality_source_keeps_the_source_alone(rig: Rig, runs: Runs) -> None:
    output = rig.output(quality="source")
    output.start_epoch("tok-a/1", [SD, AUDIO], recording=plan_passthrough(SOURCE_INFO)[0])
    await feed_run(output, "tok-a/1", runs.a, seed=6)
    assert await output.finalize(rig.storage) == f"{REC}/recording.mp4"
    assert await rig.keys(f"{REC}/sd/") == [] and await rig.keys(f"{REC}/audio/") == []
    texts = {"master": (await rig.get(f"{REC}/master.m3u8")).decode(),
             "source": (await rig.playlist("source"))[0]}
    validate_playlists(texts)
    uris = [line for line in texts["master"].splitlines() if not line.startswith("#")]
    assert uris == ["source/index.m3u8"]
    root = rig.storage.root / "recordings" / str(SID)
    assert _ffprobe_duration(root / "source" / "index.m3u8") == pytest.approx(6.0, abs=0.3)
    assert (root / "recording.mp4").is_file()


@pytest.mark.parametrize("first_ends", [True, False], ids=["ended", "cut-by-the-next-run"])
async def test_finalize_across_two_epochs(rig: Rig, runs: Runs, first_ends: bool) -> None:
    """Passthrough (the source is what players watch), ffmpeg restarted once: the MP4 is
    made from the source of both runs, 10 s, with no jump back in time. Also when the
    second run's init comes before the first run's stream ended (its last segment is then
    closed by the new run, and still belongs to the first)."""
    output = rig.output()
    output.start_epoch("tok-a/1", [SOURCE])
    await feed_run(output, "tok-a/1", {"source": runs.a["source"]}, seed=7, end=first_ends)
    output.start_epoch("tok-a/2", [SOURCE])
    await feed_run(output, "tok-a/2", {"source": runs.b["source"]}, seed=8)
    key = await output.finalize(rig.storage)
    assert key is not None
    root = rig.storage.root
    text, recording = await rig.playlist("source")
    validate_playlists({"source": text})
    assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == [3]
    assert _ffprobe_duration(root / REC / "source" / "index.m3u8") == pytest.approx(
        10.0, abs=0.3)
    seconds, frames, times = _mp4(root / key)
    assert seconds == pytest.approx(10.0, abs=0.5)
    assert frames == pytest.approx(10 * FPS, abs=5)
    assert times == sorted(times)  # no jump back at the restart
    assert await rig.keys("live/") == []
    media = [k for k in await rig.keys(f"{REC}/source/") if not k.endswith(".m3u8")]
    assert media == [f"{REC}/source/{n}" for n in
                     [*_uris(5), "init_000000.mp4", "init_000003.mp4"]]


async def test_finalize_with_nothing_received(rig: Rig) -> None:
    output = rig.output()
    output.start_epoch("tok-a/1", [SD, AUDIO])
    assert await output.finalize(rig.storage) is None
    assert await rig.keys("live/") == []
    assert await rig.keys("recordings/") == []
    with pytest.raises(RuntimeError):
        await output.finalize(rig.storage)


async def test_mp4_export_failure_reports_ffmpeg(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a fragmented MP4 at all" * 10)
    out = tmp_path / "out.mp4"
    with pytest.raises(Mp4ExportError, match="ffmpeg exited") as caught:
        await export_mp4([junk], out)
    assert "junk.mp4" in str(caught.value)  # ffmpeg's own words are passed on
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["junk.mp4"]  # no list file, no partial MP4
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


async def test_recording_playlists_are_stored_only_now_and_then_while_live(
        tmp_path: Path, runs: Runs) -> None:
    """A long class must not resend its whole recording playlist after every segment, and
    live playlists (served from memory) are never stored."""
    queue = KeyLog()
    # Half-second segments of the audio rendition (every AAC part is independent).
    output = SessionOutput(SID, queue, work_dir=tmp_path / "work", segment_seconds=0.5,
                           recording_playlist_every=5)
    output.start_epoch("t/1", [AUDIO])
    await feed_run(output, "t/1", {"audio": runs.a["audio"]}, seed=9)
    track = output.track("audio")
    assert track is not None and len(track.segments) >= 11
    segments = [k for k in queue.puts if k.endswith(".m4s")]
    assert segments == [f"{REC}/audio/{uri}" for uri in _uris(len(track.segments))]
    recording = [k for k in queue.puts if k == f"{REC}/audio/index.m3u8"]
    assert len(recording) == len(track.segments) // 5  # after segments 5, 10...
    assert not any(k.startswith("live/") for k in queue.puts)


class RefusingStorage(LocalStorage):
    """Takes playlists and segments, but never the MP4 (storage went down at the end)."""

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        raise StorageError("storage unreachable")


async def test_an_mp4_that_cannot_be_stored_is_kept_on_disk(rig: Rig, runs: Runs) -> None:
    output = rig.output()
    output.start_epoch("tok-a/1", [SOURCE])
    await feed_run(output, "tok-a/1", {"source": runs.a["source"]}, seed=10)
    with pytest.raises(StorageError):
        await output.finalize(RefusingStorage(rig.storage.root))
    kept = rig.work_dir.parent / "unsent" / f"session-{SID}.mp4"
    seconds, frames, _ = _mp4(kept)
    assert seconds == pytest.approx(6.0, abs=0.5)
    assert frames == pytest.approx(6 * FPS, abs=3)


def _journal_segments(work_dir: Path) -> Iterator[list[object]]:
    for line in (work_dir / JOURNAL_NAME).read_text().splitlines():
        entry = json.loads(line)
        if "segment" in entry:
            yield entry["segment"]


def _drop_last_journal_line(work_dir: Path) -> None:
    journal = work_dir / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))


async def test_an_output_after_a_crash_numbers_on_and_overwrites_nothing(
        rig: Rig, runs: Runs) -> None:
    """The process died mid-class (no finalize); a new process's output for the same
    session takes up the work folder, the store and the spool: the next run's segments
    follow the earlier ones, nothing stored is overwritten, and the recording has both."""
    first = rig.output()
    first.start_epoch("tok-a/1", [SOURCE])
    await feed_run(first, "tok-a/1", {"source": runs.a["source"]}, seed=11)
    assert await rig.queue.flush(10)
    # The journal names each segment with the init it starts.
    assert [(s[1], s[4]) for s in _journal_segments(rig.work_dir)] == [
        (0, "init_000000.mp4"), (1, None), (2, None)]
    before = {key: await rig.get(key) for key in await rig.keys(f"{REC}/source/")
              if not key.endswith((".m3u8", TAIL_NAME))}
    assert len(before) == 4  # three segments and their init
    # It died right after queueing the last segment, before noting it in the journal.
    _drop_last_journal_line(rig.work_dir)

    second = rig.output()
    assert await second.resume(rig.storage, rig.queue.queue.queued_keys()) == 3
    second.start_epoch("tok-b/1", [SOURCE])
    await feed_run(second, "tok-b/1", {"source": runs.b["source"]}, seed=12)
    key = await second.finalize(rig.storage)
    assert key is not None
    for stored_key, data in before.items():
        assert await rig.get(stored_key) == data, f"{stored_key} was overwritten"
    text, recording = await rig.playlist("source")
    validate_playlists({"source": text})
    assert recording.ended
    assert [s.uri for s in recording.segments] == _uris(5)
    assert [s.discontinuity for s in recording.segments] == [False] * 3 + [True, False]
    assert [s.init_uri for s in recording.segments] == [
        "init_000000.mp4", None, None, "init_000003.mp4", None]
    assert await rig.get(f"{REC}/source/init_000003.mp4") == package(runs.b["source"]).init
    root = rig.storage.root
    assert _ffprobe_duration(root / REC / "source" / "index.m3u8") == pytest.approx(
        10.0, abs=0.5)
    seconds, frames, _ = _mp4(root / key)  # both runs' source, in order
    assert seconds == pytest.approx(10.0, abs=0.5)
    assert frames == pytest.approx(10 * FPS, abs=5)


async def test_resumed_twice_the_journal_stays_in_step(rig: Rig, runs: Runs) -> None:
    """A resume that corrected the journal (a segment stored but never noted) keeps it in
    step, so a second crash and resume still knows every segment, discontinuity and init."""

    async def run(output: SessionOutput, epoch: str, stream: bytes, seed: int) -> None:
        output.start_epoch(epoch, [SOURCE])
        await feed_run(output, epoch, {"source": stream}, seed=seed)
        assert await rig.queue.flush(10)

    a, b = runs.a["source"], runs.b["source"]
    await run(rig.output(every=1000), "a/1", a, 13)
    _drop_last_journal_line(rig.work_dir)
    second = rig.output(every=1000)  # the stored playlist is rarely rewritten: the journal counts
    assert await second.resume(rig.storage, rig.queue.queue.queued_keys()) == 3
    await run(second, "b/1", b, 14)
    third = rig.output(every=1000)
    assert await third.resume(rig.storage, rig.queue.queue.queued_keys()) == 5
    await run(third, "c/1", a, 15)
    await third.finalize(rig.storage)
    text, recording = await rig.playlist("source")
    validate_playlists({"source": text})
    assert [s.uri for s in recording.segments] == _uris(8)
    assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == [3, 5]
    assert [n for n, s in enumerate(recording.segments) if s.init_uri] == [0, 3, 5]
    expected = [*package(a).segments, *package(b).segments, *package(a).segments]
    durations = [s.duration for s in recording.segments]
    assert sum(durations) == pytest.approx(16.0, abs=0.3)
    for n, data in enumerate(expected):
        assert await rig.get(f"{REC}/source/{n:06d}.m4s") == data, n
    for n, packaged in ((0, package(a)), (3, package(b)), (5, package(a))):
        assert await rig.get(f"{REC}/source/init_{n:06d}.mp4") == packaged.init


async def test_the_passthrough_live_playlist_is_valid(rig: Rig, tmp_path: Path) -> None:
    """Passthrough: players watch the copied source live, parts and all. Its muxed output
    is cut by whichever track comes first, so its tiny fragments are joined into parts of
    whole video frames, none under 85% of PART-TARGET but a segment's last."""
    (source,) = plan_passthrough(SOURCE_INFO)
    data = run_ladder(make_flv(tmp_path / "p.flv", 5, 440), [source], tmp_path / "p")
    output = rig.output()
    output.start_epoch("tok-a/1", [source])
    await feed_run(output, "tok-a/1", {"source": data["source"][:len(data["source"]) * 3 // 4]},
                   seed=16, end=False)
    playlist = output.live_playlist("source") or ""
    assert "#EXT-X-PART:" in playlist
    validate_playlists({"source": playlist})


async def test_another_node_takes_the_session_up_from_storage_alone(
        rig: Rig, runs: Runs, tmp_path: Path) -> None:
    """The node carrying the class died with its work folder and spool; another node (its
    own folder and queue, the same storage) takes the session up from what storage holds:
    the ladder, every segment with its true duration (the recording playlist is rarely
    stored, the journal tails name the rest), numbering on with one discontinuity and a new
    init; its recording covers both nodes' segments and its MP4 both runs."""
    first = rig.output(every=1000)
    first.start_epoch("tok-a/1", [SD, AUDIO])
    await feed_run(first, "tok-a/1", runs.a, seed=21)
    assert await rig.queue.flush(10)
    assert await rig.storage.get(f"{REC}/sd/index.m3u8") is None  # never stored yet
    before = {k: await rig.get(k) for k in await rig.keys(f"{REC}/")
              if k.endswith((".m4s", ".mp4"))}
    durations: dict[str, list[float]] = {}  # as the dead node's journal knew them
    for rendition, _, duration, *_ in _journal_segments(rig.work_dir):
        durations.setdefault(str(rendition), []).append(float(duration))  # type: ignore[arg-type]

    other_queue = UploadQueue(rig.storage, tmp_path / "other-spool", retry_initial=0.05)
    await other_queue.start()
    try:
        spy = SpyQueue(other_queue)
        second = SessionOutput(SID, spy, work_dir=tmp_path / "other-work",
                               segment_seconds=SEGMENT, recording_playlist_every=1000)
        assert await second.resume(rig.storage, other_queue.queued_keys()) == sum(
            len(package(runs.a[r]).segments) for r in ("sd", "audio", "source"))
        # The ladder came from storage: the live master and playlists are served at once.
        assert 'URI="audio/index.m3u8"' in (second.live_master() or "")
        live = parse_media_playlist(second.live_playlist("sd") or "")
        assert [s.duration for s in live.segments] == pytest.approx(durations["sd"], abs=1e-5)
        second.start_epoch("tok-b/1", [SD, AUDIO])
        await feed_run(second, "tok-b/1", runs.b, seed=22)
        key = await second.finalize(rig.storage)
    finally:
        await other_queue.close(10)
    assert key is not None
    for stored, data in before.items():
        assert await rig.get(stored) == data, f"{stored} was overwritten"
    texts = {}
    for rendition in ("sd", "audio", "source"):
        text, recording = await rig.playlist(rendition)
        texts[rendition] = text
        a, b = package(runs.a[rendition]), package(runs.b[rendition])
        assert recording.ended
        assert [s.uri for s in recording.segments] == _uris(len(a.segments) + len(b.segments))
        assert [n for n, s in enumerate(recording.segments) if s.discontinuity] == [
            len(a.segments)]
        assert [s.duration for s in recording.segments[:len(a.segments)]] == pytest.approx(
            durations[rendition], abs=1e-5)
        assert await rig.get(f"{REC}/{rendition}/init_{len(a.segments):06d}.mp4") == b.init
        assert await rig.storage.get(f"{REC}/{rendition}/{TAIL_NAME}") is None
    validate_playlists(texts)
    _check_ops([*rig.queue.ops, *spy.ops])  # the dead node queued first
    seconds, frames, times = _mp4(rig.storage.root / key)  # A's run from storage, then B's
    assert seconds == pytest.approx(10.0, abs=0.5)
    assert frames == pytest.approx(10 * FPS, abs=5)
    assert times == sorted(times)
    assert not (tmp_path / "other-work").exists()
