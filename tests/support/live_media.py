"""Real live media for delivery tests: the production ffmpeg command's fragmented MP4s,
and a real SessionOutput fed with them one part at a time.

`make_live_media` encodes a short lavfi clip to FLV (what a publisher sends), runs
`transcode.command.ladder_command` on it with a local folder as base_url (the same
arguments a worker uses: CMAF movflags, `-frag_duration`, forced keyframes every
segment), and cuts each rendition's stream with the CMAF packager, so a test knows in
advance every part it will feed and whether it starts a segment. `LiveFeed` feeds a
`SessionOutput` those bytes exactly as the segment receiver would (`start_epoch`, then
`feed` per chunk, then `end_stream`), one moof+mdat at a time, so a test decides when
each part arrives. `StoringQueue` is the upload queue reduced to what the tests need:
what is put lands in a real storage at `flush`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from config.settings import RungSettings
from transcode.cmaf.packager import CmafPackager, Init, Part
from transcode.command import STREAM_NAME, ladder_command
from transcode.ladder import SOURCE_NAME, Rendition, SourceInfo, plan_ladder
from transcode.rendition_track import RenditionTrack
from transcode.session_output import SessionOutput
from transcode.storage.backend import Storage

__all__ = ["EPOCH", "FPS", "HEIGHT", "SEGMENT_SECONDS", "WIDTH", "LiveFeed", "LiveMedia",
           "RenditionStream", "StoringQueue", "make_live_media"]

SEGMENT_SECONDS = 1
FPS = 30
WIDTH, HEIGHT = 320, 180
EPOCH = "stream-token/1"  # the segment receiver's "{token}/{run}"
SOURCE = SourceInfo(WIDTH, HEIGHT, float(FPS), "h264", "aac", "High", 30, 48_000)
RUNGS = (RungSettings("sd", "SD", HEIGHT, 300, 64),
         RungSettings("audio", "audio only", 0, 0, 64))


@dataclass(frozen=True)
class RenditionStream:
    """One rendition's fragmented MP4 as ffmpeg wrote it, cut into its init and parts."""

    data: bytes
    init: bytes
    parts: tuple[Part, ...]

    def segment_parts(self, number: int) -> list[Part]:
        """The parts of segment `number` (the packager's cut: a SessionOutput with the
        same segment length numbers the first run's segments the same way)."""
        segments: list[list[Part]] = []
        for part in self.parts:
            if part.new_segment:
                segments.append([])
            segments[-1].append(part)
        return segments[number]


@dataclass(frozen=True)
class LiveMedia:
    renditions: tuple[Rendition, ...]
    streams: dict[str, RenditionStream]


def _run(args: list[str], *, stdin: Path | None = None) -> None:
    if stdin is None:
        done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    else:
        with stdin.open("rb") as source:
            done = subprocess.run(args, stdin=source, capture_output=True, timeout=120,
                                  check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]


def make_live_media(folder: Path, seconds: int = 12) -> LiveMedia:
    """`seconds` of test pattern and tone through the ladder: an "sd" video-only rung and
    the "audio" rendition, 1 s segments, parts of at most 0.2 s."""
    flv = folder / "publisher.flv"
    _run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
          "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
          "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
          "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(2 * FPS),
          "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(flv)])
    renditions = tuple(plan_ladder(RUNGS, SOURCE))
    out = folder / "out"
    for name in [r.name for r in renditions] + [SOURCE_NAME]:
        (out / "1" / name).mkdir(parents=True)
    _run(ladder_command(renditions, SOURCE, base_url=str(out), run=1,
                        segment_seconds=SEGMENT_SECONDS, preset="ultrafast"), stdin=flv)
    streams = {}
    for rendition in renditions:
        data = (out / "1" / rendition.name / STREAM_NAME).read_bytes()
        packager = CmafPackager(float(SEGMENT_SECONDS))
        items = packager.feed(data) + packager.close()
        assert isinstance(items[0], Init)
        parts = tuple(item for item in items[1:] if isinstance(item, Part))
        assert len(parts) == len(items) - 1
        streams[rendition.name] = RenditionStream(data, items[0].data, parts)
    return LiveMedia(renditions, streams)


class StoringQueue:
    """The upload queue's interface; what is put is written to `storage` at `flush`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.pending: list[tuple[str, bytes, str]] = []
        self.put_keys: list[str] = []
        self.refuse = False

    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        if self.refuse:
            return False
        for name in (key, *also):
            self.pending.append((name, data, content_type))
            self.put_keys.append(name)
        return True

    def delete(self, key: str) -> bool:
        return True

    def delete_prefix(self, prefix: str) -> bool:
        return True

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        pending, self.pending = self.pending, []
        for key, data, content_type in pending:
            await self.storage.put(key, data, content_type)
        return True


class LiveFeed:
    """Feeds a SessionOutput the media's renditions, one part (moof+mdat) per call."""

    def __init__(self, output: SessionOutput, media: LiveMedia) -> None:
        self.output = output
        self.media = media
        self.fed = {name: 0 for name in media.streams}

    async def start(self) -> None:
        """The run begins: the ladder is announced and each rendition's init arrives."""
        self.output.start_epoch(EPOCH, self.media.renditions)
        for name, stream in self.media.streams.items():
            await self.output.feed(EPOCH, name, stream.init)

    def track(self, name: str) -> RenditionTrack:
        track = self.output.track(name)
        assert track is not None, name
        return track

    def next_part(self, name: str) -> Part | None:
        parts = self.media.streams[name].parts
        index = self.fed[name]
        return parts[index] if index < len(parts) else None

    def next_part_starts_segment(self, name: str) -> bool:
        part = self.next_part(name)
        assert part is not None, f"{name}: no parts left"
        return part.new_segment

    async def part(self, name: str) -> Part:
        """The next part of `name`; fails when its stream has no more."""
        part = self.next_part(name)
        assert part is not None, f"{name}: no parts left"
        await self.output.feed(EPOCH, name, part.data)
        self.fed[name] += 1
        return part

    async def to_segment(self, number: int) -> None:
        """Every rendition fed until its segments 0..number-1 are complete (segment
        `number` is open with its first part)."""
        for name in self.media.streams:
            while len(self.track(name).segments) < number:
                await self.part(name)

    async def to_mid_segment(self, name: str) -> Part:
        """`name` fed until its next part continues the open segment; returns that part
        (not fed yet)."""
        while True:
            part = self.next_part(name)
            assert part is not None, f"{name}: no parts left"
            if not part.new_segment and self.output.track(name) is not None:
                return part
            await self.part(name)

    async def rest(self) -> None:
        """Every part left, then each stream ends (the run stops)."""
        for name in self.media.streams:
            while self.next_part(name) is not None:
                await self.part(name)
            await self.output.end_stream(EPOCH, name)
