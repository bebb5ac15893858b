"""The benchmark's RTMP clients: one pre-encoded FLV, published in real time by ffmpeg.

The input is made once (720p30 H.264 + AAC, a keyframe every 2 s) and kept, so every run
and both servers receive the same bytes. Each publisher is
`ffmpeg -re -stream_loop -1 -i input.flv -c copy -f flv URL` with `-progress` written to a
file: the media time it has sent, which says whether it keeps up with the wall clock.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from child_processes import Children

INPUT_SECONDS = 60


def make_input(path: Path, *, seconds: int = INPUT_SECONDS, kbps: int = 2500) -> Path:
    """The test FLV at `path`, encoded once (a minute or two on a busy 2-core machine)."""
    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.flv")
    print(f"making the input {path} ({seconds} s, 720p30, {kbps} kbit/s) ...", flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
         "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k",
         "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv", str(partial)],
        check=True, timeout=900,
    )
    partial.rename(path)
    return path


def progress_seconds(path: Path) -> float:
    """The media time (s) an ffmpeg run has written so far, from its -progress file."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 2048))
            tail = f.read().decode(errors="replace")
    except OSError:
        return 0.0
    for line in reversed(tail.splitlines()):
        if line.startswith("out_time_us="):
            value = line.split("=", 1)[1].strip()
            return int(value) / 1e6 if value.lstrip("-").isdigit() else 0.0
    return 0.0


def progress_args(path: Path) -> list[str]:
    return ["-progress", str(path), "-stats_period", "0.5"]


@dataclass
class Publisher:
    url: str
    proc: subprocess.Popen[bytes]
    progress: Path
    started: float  # time.monotonic() when the process was started

    def media_seconds(self) -> float:
        return progress_seconds(self.progress)

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_publisher(children: Children, input_flv: Path, url: str, folder: Path,
                    name: str) -> Publisher:
    progress = folder / f"{name}.progress"
    started = time.monotonic()
    proc = children.start(
        f"publisher {name}",
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
         *progress_args(progress), "-re", "-stream_loop", "-1", "-i", input_flv,
         "-c", "copy", "-f", "flv", url],
        log=folder / f"{name}.log",
    )
    return Publisher(url, proc, progress, started)


def total_media(publishers: list[Publisher]) -> float:
    return sum(p.media_seconds() for p in publishers)
