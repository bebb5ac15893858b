"""A teacher's camera for the latency benchmark: frames showing the wall clock, published
over RTMP as OBS would.

This process paints, 30 times a second on a fixed schedule, the current `time.time()` in
ms into a 1280x720 frame (`clock_frames.Painter`: the time of capture, the "glass"), and
pipes it as raw gray video into ffmpeg, which encodes it like OBS's defaults (x264
veryfast, CBR 2500 kbit/s, a keyframe every 2 s, B-frames, AAC tone) and publishes it
with `-f flv URL`. ffmpeg stamps each frame with the time it reads it (a deep input
queue: at once), so a frame painted late (a busy machine) is late in the stream too, as a
camera's would be; when the painter is a whole frame or more behind its schedule it skips
those frames, as a camera drops them. `--stats FILE` gets a JSON summary (frames painted,
frames dropped, the worst lateness) every second.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench/clock_publisher.py rtmp://... \
        [--seconds 120] [--stats FILE]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from clock_frames import Painter, encoder_args, raw_input_args, tone_args

FPS = 30


def ffmpeg_command(url: str) -> list[str]:
    # Each frame is stamped with the time ffmpeg reads it (a deep queue reads it as soon as
    # it is written): the capture time, as a camera's; then put on a 30 fps grid.
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
            "-thread_queue_size", "64", "-use_wallclock_as_timestamps", "1",
            *raw_input_args(FPS), *tone_args(real_time=True),
            "-map", "0:v", "-map", "1:a", "-shortest", *encoder_args(FPS),
            "-fps_mode", "cfr", "-r", str(FPS), "-f", "flv", url]


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def publish(url: str, seconds: float, stats: Path | None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    painter = Painter()
    encoder = subprocess.Popen(ffmpeg_command(url), stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    frames = slot = dropped = 0
    worst = 0.0
    period = 1.0 / FPS
    start = time.monotonic()
    next_stats = start
    try:
        while time.monotonic() - start < seconds:
            due = start + slot * period
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                worst = max(worst, now - due)
                # Behind by a frame or more: skip those slots, as a camera drops frames.
                skip = int((now - due) / period)
                slot += skip
                dropped += skip
            painted = int(time.time() * 1000)
            encoder.stdin.write(painter.frame(painted, slot))
            frames += 1
            slot += 1
            if stats is not None and time.monotonic() >= next_stats:
                next_stats += 1.0
                stats.write_text(json.dumps({"frames": frames, "dropped": dropped,
                                             "worst_late_s": round(worst, 3)}))
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        try:
            encoder.stdin.close()
        except BrokenPipeError:
            pass
        try:
            encoder.wait(timeout=5)
        except subprocess.TimeoutExpired:
            encoder.kill()
            encoder.wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--stats", type=Path)
    args = parser.parse_args()
    return publish(args.url, args.seconds, args.stats)


if __name__ == "__main__":
    sys.exit(main())
