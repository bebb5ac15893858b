"""A wall-clock time painted into video frames as big black and white blocks, and read back.

The code is a band of 2 rows x 20 cells near the top of the frame (each cell 64x64 pixels
at 720p, 32x32 at 360p): the first two cells of each row are a fixed start pattern (white,
black / black, white), which also gives the decoder its black and white levels; the other
36 cells hold the time in ms modulo 2**32 (most significant bit first) followed by one
even-parity bit per byte. A reader knows the time to within 2**32 ms (49 days) from its
own clock, so the full time comes back as `unwrap(code, now_ms)`.

The same layout is read in Python (a gray plane, for the self-check) and in the browser
(`DECODER_JS`, on a canvas the presented video frame is drawn to). Frames are made
without numpy: a gray8 picture is a few hundred repeated rows.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench/clock_frames.py   # the self-check
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1280, 720
COLS, ROWS = 20, 2
CELL_W = 1.0 / COLS  # fractions of the frame
CELL_H = 64 / 720
TOP = 80 / 720
MARKERS = ((1, 0), (0, 1))  # the first two cells of each row
VALUE_BITS = 32
PARITY_BITS = VALUE_BITS // 8
WRAP = 1 << VALUE_BITS
BLACK, WHITE, BACKGROUND = 16, 235, 128


def bits_for(value: int) -> list[int]:
    """The 36 data cells for a 32-bit value: the value, then one even parity bit per byte."""
    value %= WRAP
    bits = [(value >> (VALUE_BITS - 1 - i)) & 1 for i in range(VALUE_BITS)]
    parity = [sum(bits[8 * b:8 * b + 8]) & 1 for b in range(PARITY_BITS)]
    return bits + parity


def cells_for(value: int) -> list[list[int]]:
    """Each row's cells (1 = white) for `value`."""
    data = bits_for(value)
    per_row = COLS - 2
    return [[*MARKERS[r], *data[r * per_row:(r + 1) * per_row]] for r in range(ROWS)]


def value_of(cells: list[list[int]]) -> int | None:
    """The value the data cells hold, or None if the parity does not match."""
    data = [bit for row in cells for bit in row[2:]]
    bits, parity = data[:VALUE_BITS], data[VALUE_BITS:]
    if parity != [sum(bits[8 * b:8 * b + 8]) & 1 for b in range(PARITY_BITS)]:
        return None
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    return value


def unwrap(code: int, now_ms: int) -> int:
    """The full ms time that `code` (a time modulo 2**32) stands for, at most `now_ms`."""
    return now_ms - ((now_ms - code) % WRAP)


class Painter:
    """Gray8 frames (WIDTH x HEIGHT) with the code band and a moving bar below it (so the
    encoder has some motion to code, as a camera would give it)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.top = round(TOP * height)
        self.cell_h = round(CELL_H * height)
        self.edges = [round(c * CELL_W * width) for c in range(COLS + 1)]
        # A gentle horizontal gradient for the rest of the picture.
        self.plain = bytes(60 + (x * 120) // width for x in range(width))
        self.bar_top = self.top + ROWS * self.cell_h + 40

    def _band_row(self, cells: list[int]) -> bytes:
        row = bytearray([BACKGROUND]) * self.width
        for c, bit in enumerate(cells):
            row[self.edges[c]:self.edges[c + 1]] = bytes([WHITE if bit else BLACK]) * (
                self.edges[c + 1] - self.edges[c])
        return bytes(row)

    def frame(self, value: int, index: int) -> bytes:
        """One frame showing `value`; `index` moves the bar."""
        band = b"".join(self._band_row(row) * self.cell_h for row in cells_for(value))
        bar = bytearray(self.plain)
        x = (index * 12) % self.width
        bar[x:x + 48] = bytes([WHITE]) * len(bar[x:x + 48])
        moving = bytes(bar)
        rows_below = self.height - self.top - ROWS * self.cell_h
        gap = self.bar_top - self.top - ROWS * self.cell_h
        return b"".join((
            self.plain * self.top, band, self.plain * gap,
            moving * (rows_below - gap),
        ))


def read_gray(plane: bytes, width: int, height: int) -> int | None:
    """The code in a gray plane of any size (the layout scales), or None if unreadable."""
    means: list[list[float]] = []
    for r in range(ROWS):
        y0 = (TOP + (r + 0.25) * CELL_H) * height
        y1 = (TOP + (r + 0.75) * CELL_H) * height
        rows = range(int(y0), max(int(y0) + 1, int(y1)))
        row_means = []
        for c in range(COLS):
            x0 = int((c + 0.25) * CELL_W * width)
            x1 = max(x0 + 1, int((c + 0.75) * CELL_W * width))
            total = sum(sum(plane[y * width + x0:y * width + x1]) for y in rows)
            row_means.append(total / (len(rows) * (x1 - x0)))
        means.append(row_means)
    return _decide(means)


def _decide(means: list[list[float]]) -> int | None:
    whites = [means[r][c] for r in range(ROWS) for c in range(2) if MARKERS[r][c]]
    blacks = [means[r][c] for r in range(ROWS) for c in range(2) if not MARKERS[r][c]]
    if min(whites) - max(blacks) < 60:
        return None  # no code here (or not this layout)
    threshold = (sum(whites) / len(whites) + sum(blacks) / len(blacks)) / 2
    return value_of([[1 if m > threshold else 0 for m in row] for row in means])


# The browser's reader: draws the band of the presented frame to a small canvas (8x8
# pixels per cell) and reads it as read_gray does. Returns the full painted time in ms,
# or null. Defines window.__clockRead(video).
DECODER_JS = f"""
(() => {{
  const COLS = {COLS}, ROWS = {ROWS}, CELL_W = {CELL_W}, CELL_H = {CELL_H}, TOP = {TOP};
  const MARKERS = {[list(m) for m in MARKERS]};
  const WRAP = {WRAP}, PX = 8;
  const canvas = document.createElement("canvas");
  canvas.width = COLS * PX; canvas.height = ROWS * PX;
  const ctx = canvas.getContext("2d", {{ willReadFrequently: true }});
  window.__clockRead = (video) => {{
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    ctx.drawImage(video, 0, TOP * h, w, ROWS * CELL_H * h, 0, 0, canvas.width, canvas.height);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const means = [];
    for (let r = 0; r < ROWS; r++) {{
      const row = [];
      for (let c = 0; c < COLS; c++) {{
        let sum = 0;
        for (let y = r * PX + 2; y < r * PX + 6; y++) {{
          for (let x = c * PX + 2; x < c * PX + 6; x++) {{
            const i = (y * canvas.width + x) * 4;
            sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
          }}
        }}
        row.push(sum / 16);
      }}
      means.push(row);
    }}
    const whites = [], blacks = [];
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < 2; c++)
      (MARKERS[r][c] ? whites : blacks).push(means[r][c]);
    if (Math.min(...whites) - Math.max(...blacks) < 60) return null;
    const avg = (a) => a.reduce((s, v) => s + v, 0) / a.length;
    const threshold = (avg(whites) + avg(blacks)) / 2;
    const data = [];
    for (let r = 0; r < ROWS; r++) for (let c = 2; c < COLS; c++)
      data.push(means[r][c] > threshold ? 1 : 0);
    let value = 0;
    for (let b = 0; b < {PARITY_BITS}; b++) {{
      let ones = 0;
      for (let i = 0; i < 8; i++) {{
        ones += data[8 * b + i];
        value = value * 2 + data[8 * b + i];
      }}
      if ((ones & 1) !== data[{VALUE_BITS} + b]) return null;
    }}
    const now = Date.now();
    return now - (((now - value) % WRAP) + WRAP) % WRAP;
  }};
}})();
"""

# x264 as OBS sets it up by default (veryfast, high, CBR 2500 kbit/s, a keyframe every
# 2 s, B-frames as the preset has them) and an AAC tone.
def encoder_args(fps: int = 30, kbps: int = 2500) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
        "-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k",
        "-bufsize", f"{kbps}k", "-x264-params", "nal-hrd=cbr",
        "-g", str(2 * fps), "-keyint_min", str(2 * fps), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2",
    ]


def raw_input_args(fps: int = 30) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "gray", "-video_size", f"{WIDTH}x{HEIGHT}",
            "-framerate", str(fps), "-i", "pipe:0"]


def tone_args(*, real_time: bool) -> list[str]:
    return [*(["-re"] if real_time else []), "-f", "lavfi",
            "-i", "sine=frequency=440:sample_rate=48000"]


def encode_clip(values: list[int], path: Path) -> None:
    """An FLV of one frame per value, encoded as the publisher encodes."""
    painter = Painter()
    data = b"".join(painter.frame(v, i) for i, v in enumerate(values))
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         *raw_input_args(), *tone_args(real_time=False), "-shortest",
         *encoder_args(), "-f", "flv", str(path)],
        input=data, check=True, timeout=120,
    )


def decode_gray(path: Path, width: int, height: int, kbps: int | None = None) -> list[int | None]:
    """Each frame's code after scaling to width x height (through x264 at `kbps` first,
    as a ladder rung is made, when given)."""
    source = str(path)
    with tempfile.TemporaryDirectory() as folder:
        if kbps is not None:
            rung = Path(folder) / "rung.ts"
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", source,
                 "-vf", f"scale={width}:{height}", "-c:v", "libx264", "-preset", "veryfast",
                 "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k",
                 "-an", "-f", "mpegts", str(rung)],
                check=True, timeout=120,
            )
            source = str(rung)
        raw = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", source,
             "-vf", f"scale={width}:{height}", "-fps_mode", "passthrough", "-f", "rawvideo",
             "-pix_fmt", "gray", "-"],
            check=True, capture_output=True, timeout=120,
        ).stdout
    size = width * height
    return [read_gray(raw[i:i + size], width, height) for i in range(0, len(raw), size)]


def self_check(frames: int = 90) -> list[str]:
    """Encodes `frames` frames with known times, reads them back at 720p, at 360p through
    x264 at 600 kbit/s and at 360p at 300 kbit/s; returns the problems found (none: ok)."""
    base = 1_753_000_000_000
    values = [(base + i * 33 + (i * 7919) % 1000) % WRAP for i in range(frames)]
    values[:4] = [0, WRAP - 1, 0x55555555, 0xAAAAAAAA]  # edge patterns
    problems = []
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.flv"
        encode_clip(values, clip)
        for width, height, kbps in ((1280, 720, None), (640, 360, 600), (640, 360, 300)):
            got = decode_gray(clip, width, height, kbps)
            if got != values:
                wrong = sum(1 for a, b in zip(got, values, strict=False) if a != b)
                problems.append(f"{width}x{height} at {kbps or 'source'} kbit/s: {wrong} of "
                                f"{len(values)} frames misread ({len(got)} decoded)")
    if unwrap(values[0], base) != base - (base % WRAP):
        problems.append("unwrap is wrong")
    return problems


def main() -> int:
    problems = self_check()
    for problem in problems:
        print("FAIL:", problem)
    if not problems:
        print("clock code self-check: every frame read back exactly (720p, 360p x264)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
