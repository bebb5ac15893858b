"""Real ffmpeg runs as the worker makes them, for tests of SessionOutput and the receiver.

A "publisher" is an FLV made by ffmpeg from lavfi (a test picture and a tone), as the
RTMP server hands it to a worker; `run_ladder` puts it through `transcode.command`'s
own `ladder_command` (the same movflags and fragment lengths as in production) with a
local folder as base_url, so each rendition's fragmented MP4 lands in a file instead of
an HTTP PUT. `feed_run` hands those bytes to a SessionOutput as the segment receiver
does: in chunks of random sizes, the renditions interleaved, then the end of each stream.
`decode` plays an init segment and media segments as a player would.
"""

from __future__ import annotations

import io
import random
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from transcode.cmaf.packager import CmafPackager, Init
from transcode.command import ladder_command, stream_url
from transcode.ladder import AAC_LC, SOURCE_NAME, Rendition, SourceInfo, h264_codec_tag, x264_level
from transcode.session_output import SessionOutput

__all__ = ["AUDIO", "FPS", "SD", "SOURCE", "SOURCE_INFO", "Decoded", "chunks", "decode",
           "feed_run", "make_flv", "run_ladder"]

FPS = 30
SOURCE_INFO = SourceInfo(320, 180, float(FPS), "h264", "aac", "High", 13, 48_000)
# Video-only rung and the shared audio rendition, as plan_ladder makes them.
SD = Rendition("sd", "SD", 320, 180, 500, 0, False,
               h264_codec_tag("High", x264_level(180, FPS)), fps=float(FPS))
AUDIO = Rendition("audio", "audio only", 0, 0, 0, 96, True, AAC_LC)
# Passthrough: the source itself, remuxed.
SOURCE = Rendition(SOURCE_NAME, SOURCE_NAME, 320, 180, 0, 0, True,
                   f"{h264_codec_tag('High', 13)},{AAC_LC}",
                   copy=True, fps=float(FPS))


def make_flv(path: Path, seconds: int, frequency: int) -> Path:
    """What a publisher sends: H.264 with a keyframe every second, and AAC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
         "-c:a", "aac", "-f", "flv", str(path)],
        check=True, timeout=120)
    return path


def run_ladder(flv: Path, renditions: Sequence[Rendition], folder: Path, *, run: int = 1,
               segment_seconds: int = 2) -> dict[str, bytes]:
    """The worker's ffmpeg on `flv`, writing to files: each output's bytes by name."""
    names = [r.name for r in renditions]
    if not all(r.copy for r in renditions):
        names.append(SOURCE_NAME)  # ladder mode also writes the recording's source copy
    for name in names:
        Path(stream_url(str(folder), run, name)).parent.mkdir(parents=True, exist_ok=True)
    command = ladder_command(renditions, SOURCE_INFO, base_url=str(folder), run=run,
                             segment_seconds=segment_seconds, preset="ultrafast")
    with flv.open("rb") as stdin:
        done = subprocess.run([*command, "-y"], stdin=stdin, capture_output=True,
                              timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return {name: Path(stream_url(str(folder), run, name)).read_bytes() for name in names}


@dataclass(frozen=True)
class Packaged:
    """One stream cut as the session output cuts it: its init and its segments' bytes."""

    init: bytes
    segments: list[bytes]


def package_stream(data: bytes, segment_seconds: float = 2.0) -> Packaged:
    """The init and the complete segments `data` holds, the stream fed whole."""
    packager = CmafPackager(segment_seconds)
    init = b""
    segments: list[bytes] = []
    for item in [*packager.feed(data), *packager.close()]:
        if isinstance(item, Init):
            init = item.data
        elif item.new_segment or not segments:
            segments.append(item.data)
        else:
            segments[-1] += item.data
    return Packaged(init, segments)


def chunks(data: bytes, rng: random.Random, largest: int = 16_384) -> list[bytes]:
    """`data` cut at random places, from single bytes to `largest`."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        size = rng.choice((1, 7, rng.randint(1, 512), rng.randint(1, largest)))
        out.append(data[offset:offset + size])
        offset += size
    return out


async def feed_run(output: SessionOutput, epoch: str, streams: Mapping[str, bytes], *,
                   seed: int, end: bool = True) -> None:
    """Each stream in random chunks, the renditions interleaved (they arrive side by side),
    then each stream's end."""
    rng = random.Random(seed)
    pending = {name: chunks(data, rng) for name, data in streams.items()}
    while any(pending.values()):
        name = rng.choice([n for n, left in pending.items() if left])
        await output.feed(epoch, name, pending[name].pop(0))
    if end:
        for name in streams:
            await output.end_stream(epoch, name)


@dataclass(frozen=True)
class Decoded:
    frames: int  # video frames, or audio frames when there is no video
    seconds: float  # from the first frame's start to the last frame's end
    width: int | None
    height: int | None
    audio: bool


def decode(init: bytes, *media: bytes) -> Decoded:
    """Init + media concatenated, decoded whole with PyAV (as a player appends them)."""
    container = av.open(io.BytesIO(init + b"".join(media)), mode="r", format="mp4")
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = bool(container.streams.audio)
        stream = video if video is not None else container.streams.audio[0]
        times: list[float] = []
        ends: list[float] = []
        width = height = None
        for frame in container.decode(stream):
            assert isinstance(frame, (av.VideoFrame, av.AudioFrame)) and frame.time is not None
            times.append(frame.time)
            if isinstance(frame, av.VideoFrame):
                width, height = frame.width, frame.height
                ends.append(frame.time + 1 / FPS)
            else:
                ends.append(frame.time + frame.samples / frame.sample_rate)
    seconds = max(ends) - min(times) if times else 0.0
    return Decoded(len(times), seconds, width, height, audio)
