"""The transcode worker end to end with real ffmpeg, and its bounded FLV feed.

A tiny aiohttp server in the test stands in for the segment receiver: it keeps every
streamed PUT body (one fragmented MP4 per rendition per run) by path. Outputs are checked
as a viewer would get them: each stream cut into LL-HLS parts and segments by the same
`CmafPackager` the node uses, and each segment (init + its parts) opened and decoded
with PyAV.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from config.settings import StreamingSettings
from support.flv_reader import make_flv, read_flv
from transcode.cmaf import CmafError, CmafPackager, Init, Part
from transcode.events import (
    BufferOverflow,
    Event,
    RunStarted,
    WorkerFailed,
    WorkerRestarted,
    WorkerStopped,
)
from transcode.flv_feed import FeedTag, FlvFeed, TagKind
from transcode.part_timing import part_target
from transcode.worker import TranscodeWorker

SEGMENT = 2
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[FeedTag]]:
    folder = tmp_path_factory.mktemp("media")
    return {
        # An 8 s GOP: the ladder's keyframes cannot come from the source.
        "hd": read_flv(make_flv(folder / "hd.flv", width=1280, height=720, gop=240)),
        "small": read_flv(make_flv(folder / "small.flv", seconds=8)),
        "video_only": read_flv(make_flv(folder / "vo.flv", audio=False, seconds=4)),
        "audio_only": read_flv(make_flv(folder / "ao.flv", video=False, seconds=5)),
    }


class Receiver:
    """What ffmpeg PUT, by path: each body kept as its chunks arrive."""

    def __init__(self) -> None:
        self.streams: dict[str, bytearray] = {}
        self.ended: set[str] = set()  # bodies received to their end
        self.app = web.Application()
        self.app.router.add_put("/{tail:.*}", self._put)

    async def _put(self, request: web.Request) -> web.Response:
        body = self.streams.setdefault(request.path, bytearray())
        async for chunk in request.content.iter_any():
            body += chunk
        self.ended.add(request.path)
        return web.Response(status=201)

    def paths(self) -> set[str]:
        return set(self.streams)


@dataclass
class Packaged:
    """One rendition's stream of one run, cut as the node cuts it."""

    init: bytes
    segments: list[list[Part]]

    def segment_bytes(self, index: int) -> bytes:
        """What a player decodes: the init, then the segment's parts."""
        return self.init + b"".join(part.data for part in self.segments[index])

    @property
    def starts(self) -> list[float]:
        return [parts[0].start for parts in self.segments]

    @property
    def durations(self) -> list[float]:
        return [sum(p.duration for p in parts) for parts in self.segments]


def package(data: bytes | bytearray) -> Packaged:
    """Cut a whole fragmented MP4 into its init and segments (one init: one run)."""
    packager = CmafPackager(SEGMENT)
    inits: list[bytes] = []
    segments: list[list[Part]] = []
    for item in packager.feed(bytes(data)) + packager.close():
        if isinstance(item, Init):
            inits.append(item.data)
        elif item.new_segment:
            segments.append([item])
        else:
            segments[-1].append(item)
    assert len(inits) == 1, f"{len(inits)} init segments in one run's stream"
    for parts in segments:
        assert parts[0].independent
    return Packaged(inits[0], segments)


def complete_parts(data: bytes | bytearray) -> int:
    """How many whole parts the bytes received so far hold (0 before the init)."""
    packager = CmafPackager(SEGMENT)
    try:
        return sum(isinstance(item, Part) for item in packager.feed(bytes(data)))
    except CmafError:
        return 0


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> tuple[Receiver, str]:
    rec = Receiver()
    server = await aiohttp_server(rec.app)
    return rec, str(server.make_url("/live/s1"))


def streaming(**changes: Any) -> StreamingSettings:
    # ultrafast keeps the tests quick; the command's content is tested elsewhere.
    return dataclasses.replace(StreamingSettings(), segment_seconds=SEGMENT,
                               x264_preset="ultrafast", **changes)


def segment_info(data: bytes) -> dict[str, Any]:
    """Open one fMP4 segment (init + parts) as a player would: tracks, size, first
    frame, decodability, sound format."""
    with av.open(io.BytesIO(data), mode="r") as container:
        info: dict[str, Any] = {"video": bool(container.streams.video),
                                "audio": bool(container.streams.audio)}
        if container.streams.video:
            stream = container.streams.video[0]
            info["profile"] = stream.codec_context.profile
            frames = list(container.decode(video=0))
            assert frames, "a video segment without a decodable frame"
            info["size"] = (frames[0].width, frames[0].height)
            info["first_keyframe"] = frames[0].key_frame
            info["frames"] = len(frames)
            container.seek(0)
        if container.streams.audio:
            audio = container.streams.audio[0]
            info["audio_codec"] = audio.codec_context.name
            info["audio_rate"] = audio.codec_context.sample_rate
            info["audio_channels"] = audio.codec_context.channels
            samples = sum(f.samples for f in container.decode(audio=0))
            assert samples, "an audio segment without decodable sound"
            info["audio_seconds"] = samples / info["audio_rate"]
    return info


def process_gone(pid: int) -> bool:
    """No such process, not even a zombie waiting to be reaped."""
    return not Path(f"/proc/{pid}").exists()


async def run_all(worker: TranscodeWorker, tags: list[FeedTag]) -> None:
    for tag in tags:
        worker.push(tag)
    await worker.finish(timeout=90)


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stream(rec: Receiver, run: int, name: str) -> Packaged:
    path = f"/live/s1/{run}/{name}/stream.mp4"
    assert path in rec.ended, f"{path} not received to its end"
    return package(rec.streams[path])


async def test_ladder_from_720p_with_long_gop(media: dict[str, list[FeedTag]],
                                              receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=events.append)
    await run_all(worker, media["hd"])

    assert [r.name for r in worker.renditions] == ["hd", "sd", "mobile", "audio"]
    assert isinstance(events[0], RunStarted) and events[0].run == 1
    assert isinstance(events[-1], WorkerStopped)
    assert worker.source is not None and worker.source.height == 720
    assert rec.paths() == {f"/live/s1/1/{n}/stream.mp4"
                           for n in ("hd", "sd", "mobile", "audio", "source")}
    sizes = {"hd": {(1280, 720)}, "sd": {(854, 480), (852, 480)}, "mobile": {(640, 360)}}
    packaged = {name: stream(rec, 1, name) for name in (*sizes, "audio", "source")}
    for name, expected in sizes.items():
        for index in range(len(packaged[name].segments)):
            info = segment_info(packaged[name].segment_bytes(index))
            assert info["size"] in expected, (name, index)
            assert info["first_keyframe"], (name, index)
            # The sound is the audio rendition's, not the rung's.
            assert not info["audio"], (name, index)
    hd = packaged["hd"]
    assert len(hd.segments) >= 3
    # LL-HLS parts: several per segment, none longer than the PART-TARGET declared.
    target = part_target(worker.renditions, worker.settings.part_ms / 1000)
    for name in ("hd", "sd", "mobile", "audio"):
        parts = [part for segment in packaged[name].segments for part in segment]
        assert all(part.duration <= target + 1e-6 for part in parts), name
        assert all(len(segment) >= 5 for segment in packaged[name].segments[:-1]), name
    # Segment boundaries every S seconds although the source has one keyframe in 8 s...
    assert all(abs(d - SEGMENT) < 0.1 for d in hd.durations[:-1])
    # ...at the same media times on every rung, so a player can switch between them.
    for name in ("sd", "mobile"):
        assert len(packaged[name].starts) == len(hd.starts), name
        assert all(abs(a - b) < 0.01
                   for a, b in zip(packaged[name].starts, hd.starts, strict=True)), name

    audio = packaged["audio"]
    assert len(audio.segments) == len(hd.segments)
    # Audio parts (~0.2 s of AAC frames) cut the segment at the first part on or past
    # the boundary: the starts agree with the video's to within a part.
    assert all(abs(a - v) < 0.25 for a, v in zip(audio.starts, hd.starts, strict=True))
    for index in range(len(audio.segments)):
        info = segment_info(audio.segment_bytes(index))
        assert info["audio"] and not info["video"]
        assert (info["audio_codec"], info["audio_rate"], info["audio_channels"]) == (
            "aac", 48_000, 2)

    # The recording copy: the source muxed, at its own size, with its sound.
    first = segment_info(packaged["source"].segment_bytes(0))
    assert first["size"] == (1280, 720) and first["audio"] and first["first_keyframe"]


async def test_video_only_source_has_no_audio_rung(media: dict[str, list[FeedTag]],
                                                   receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=events.append)
    await run_all(worker, media["video_only"])

    assert [r.name for r in worker.renditions] == ["mobile"]
    assert isinstance(events[-1], WorkerStopped)
    mobile = stream(rec, 1, "mobile")
    assert len(mobile.segments) >= 2
    for index in range(len(mobile.segments)):
        info = segment_info(mobile.segment_bytes(index))
        assert info["size"] == (640, 360) and info["first_keyframe"] and not info["audio"]
    assert not any("/audio/" in path for path in rec.paths())
    source = segment_info(stream(rec, 1, "source").segment_bytes(0))
    assert source["video"] and not source["audio"]


async def test_audio_only_source(media: dict[str, list[FeedTag]],
                                  receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=events.append)
    await run_all(worker, media["audio_only"])

    assert [r.name for r in worker.renditions] == ["audio"]
    assert isinstance(events[-1], WorkerStopped)
    audio = stream(rec, 1, "audio")
    assert sum(audio.durations) == pytest.approx(5, abs=0.3)
    assert all(abs(d - SEGMENT) < 0.25 for d in audio.durations[:-1])
    for index in range(len(audio.segments)):
        info = segment_info(audio.segment_bytes(index))
        assert info["audio"] and not info["video"]
        assert (info["audio_codec"], info["audio_rate"], info["audio_channels"]) == (
            "aac", 48_000, 2)
    source = segment_info(stream(rec, 1, "source").segment_bytes(0))
    assert source["audio"] and not source["video"]


async def test_passthrough_copies_the_source(media: dict[str, list[FeedTag]],
                                             receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(transcode_mode="passthrough"),
                             base_url=base, events=events.append)
    await run_all(worker, media["small"])

    assert [(r.name, r.copy) for r in worker.renditions] == [("source", True)]
    assert rec.paths() == {"/live/s1/1/source/stream.mp4"}
    source = stream(rec, 1, "source")
    assert source.segments
    info = segment_info(source.segment_bytes(0))
    assert info["size"] == (640, 360) and info["first_keyframe"]
    # Copied, not re-encoded, and muxed: the source's profile, sound and rate survive.
    assert info["audio"] and info["audio_rate"] == 44_100
    assert info["profile"] == "Constrained Baseline"


async def test_killed_ffmpeg_restarts_as_a_new_run(media: dict[str, list[FeedTag]],
                                                   receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=events.append)
    tags = media["small"]
    half = next(i for i, t in enumerate(tags) if t.timestamp_ms >= 4000)
    for tag in tags[:half]:
        worker.push(tag)
    run1 = "/live/s1/1/mobile/stream.mp4"
    await wait_for(lambda: complete_parts(rec.streams.get(run1, b"")) > 0, "a run 1 part")
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: any(isinstance(e, WorkerRestarted) for e in events), "a restart")
    for tag in tags[half:]:
        worker.push(tag)
    await worker.finish(timeout=60)

    restarted = next(e for e in events if isinstance(e, WorkerRestarted))
    assert restarted.run == 2 and "status" in restarted.reason
    assert [e.run for e in events if isinstance(e, RunStarted)] == [1, 2]
    assert isinstance(events[-1], WorkerStopped)
    assert worker.run == 2 and worker.restarts == 1 and not worker.failed
    # Run 2 is a new stream per rendition, each starting with its own init.
    for name in ("mobile", "audio", "source"):
        packaged = stream(rec, 2, name)
        assert packaged.segments, name
        info = segment_info(packaged.segment_bytes(0))
        if name == "mobile":
            assert info["size"] == (640, 360) and info["first_keyframe"]
            assert not info["audio"]
        if name == "audio":
            assert info["audio_rate"] == 48_000 and not info["video"]
    assert process_gone(pid)  # reaped, not a zombie


async def test_ffmpeg_that_always_dies_fails_the_worker(media: dict[str, list[FeedTag]],
                                                        receiver: tuple[Receiver, str],
                                                        tmp_path: Path) -> None:
    _, base = receiver
    script = tmp_path / "bad-ffmpeg"
    script.write_text("#!/bin/sh\necho 'boom: no such codec' >&2\nexit 1\n")
    script.chmod(0o755)
    events: list[Event] = []
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=events.append,
                             ffmpeg=str(script), max_restarts=2, restart_window=60)
    tags = media["small"]
    for tag in tags[:len(tags) // 2]:
        worker.push(tag)
    await wait_for(lambda: worker.failed, "the worker to give up")

    failed = [e for e in events if isinstance(e, WorkerFailed)]
    assert len(failed) == 1 and "boom" in failed[0].reason
    assert [e.run for e in events if isinstance(e, WorkerRestarted)] == [2, 3]
    assert all("boom" in e.reason for e in events if isinstance(e, WorkerRestarted))
    assert worker.restarts == 2 and worker.run == 3
    # Pushes are still accepted, and forgotten: nothing queues up for a dead worker.
    for tag in tags[len(tags) // 2:]:
        worker.push(tag)
    assert worker.feed.size == 0
    await worker.finish(timeout=10)
    assert not any(isinstance(e, WorkerStopped) for e in events)
    assert sum(isinstance(e, RunStarted) for e in events) == 3


async def test_kill_stops_ffmpeg(media: dict[str, list[FeedTag]],
                                 receiver: tuple[Receiver, str]) -> None:
    _, base = receiver
    worker = TranscodeWorker("s1", settings=streaming(), base_url=base, events=lambda e: None)
    for tag in media["small"]:
        if tag.timestamp_ms > 2000:
            break
        worker.push(tag)
    await wait_for(lambda: worker.pid is not None, "ffmpeg to start")
    pid = worker.pid
    await worker.kill()
    assert worker.pid is None and pid is not None and process_gone(pid)
    worker.push(media["small"][-1])  # still accepted, and ignored
    assert worker.feed.size == 0


def test_feed_tags_are_classified(media: dict[str, list[FeedTag]]) -> None:
    tags = media["small"]
    assert tags[0].kind == TagKind.SCRIPT and tags[0].config
    configs = [t.kind for t in tags if t.config]
    assert configs == [TagKind.SCRIPT, TagKind.VIDEO, TagKind.AUDIO]
    keyframes = [t.timestamp_ms for t in tags if t.keyframe]
    # A 30-frame GOP at 30 fps (ffmpeg's FLV starts a little after 0 for AAC priming).
    assert [t - keyframes[0] for t in keyframes[:3]] == [0, 1000, 2000]
    rebuilt = FeedTag.from_body(tags[5].kind, tags[5].timestamp_ms, tags[5].body)
    assert rebuilt == tags[5]


async def test_full_feed_drops_until_a_keyframe_and_reports(
        media: dict[str, list[FeedTag]]) -> None:
    tags = media["small"]
    events: list[Event] = []
    feed = FlvFeed(150_000, stream="s1", events=events.append)
    first_drop = None
    for index, tag in enumerate(tags):  # nobody consumes: the buffer fills
        feed.push(tag)
        if feed.dropped_bytes and first_drop is None:
            first_drop = index
        if first_drop is not None and index > first_drop + 10:
            break
    assert first_drop is not None and feed.dropped_bytes > 0
    overflows = [e for e in events if isinstance(e, BufferOverflow)]
    assert len(overflows) == 1 and overflows[0].stream == "s1"
    assert feed.size <= 150_000

    queued: list[FeedTag] = []
    while feed.size:
        batch = await feed.get()
        assert batch is not None
        queued += batch
    assert queued == tags[:first_drop]
    # The consumer caught up: the feed resumes at the next keyframe, not mid-GOP.
    for tag in tags[index + 1:]:
        feed.push(tag)
        if feed.size:
            break
    batch = await feed.get()
    assert batch is not None and batch[0].keyframe
    skipped = sum(len(t.data) for t in tags[first_drop:tags.index(batch[0])])
    feed.flush_report()
    assert feed.dropped_bytes == skipped
    assert sum(e.dropped_bytes for e in events if isinstance(e, BufferOverflow)) == skipped


async def test_feed_replays_init_tags_and_restarts_at_a_keyframe(
        media: dict[str, list[FeedTag]]) -> None:
    tags = media["small"]
    feed = FlvFeed(1 << 30)
    for tag in tags:
        feed.push(tag)
    init = feed.init_tags(audio=True, video=True)
    assert init.startswith(b"FLV\x01\x05")
    for tag in tags[:3]:
        assert tag.data in init
    for expected in tags[:5]:
        assert await feed.get(max_bytes=1) == [expected]
    feed.restart()
    batch = await feed.get(max_bytes=1)
    assert batch is not None and batch[0].keyframe
    assert batch[0] == next(t for t in tags[5:] if t.keyframe)
    feed.close()
    rest: list[FeedTag] = []
    while (more := await feed.get()) is not None:
        rest += more
    assert rest[-1] == tags[-1]
