"""A recording's poster frame: one JPEG picture from a few seconds into the class.

Shown on the course page beside each recording. A picture from the very start is often
black (an encoder warming up, a camera adjusting), so it is taken a little later, or
from the first frame of a very short recording.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

__all__ = ["extract_poster"]

# Seconds into the recording; recordings shorter than this give their first frame.
POSTER_OFFSET = 3.0
POSTER_WIDTH = 640


async def extract_poster(video: Path, out: Path, *, ffmpeg: str = "ffmpeg") -> bool:
    """Write a JPEG of `video` to `out`, 640 pixels wide; False when there is no picture
    (an audio-only class) or ffmpeg fails."""
    for offset in (POSTER_OFFSET, 0.0):
        process = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-ss", str(offset), "-i", str(video), "-map", "0:v:0?", "-frames:v", "1",
            "-vf", f"scale='min({POSTER_WIDTH},iw)':-2", "-q:v", "4", "-f", "image2",
            str(out),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        if process.returncode == 0 and await asyncio.to_thread(_nonempty, out):
            return True
    return False


def _nonempty(path: Path) -> bool:
    # ffmpeg exits 0 without writing anything when the input has no video.
    return path.exists() and path.stat().st_size > 0
