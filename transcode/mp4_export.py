"""The downloadable MP4 of a recording: the runs' pieces joined by ffmpeg, streams copied.

Each piece is one run's source as a fragmented MP4 (its init and its segments); pieces
recorded before segments became CMAF are MPEG-TS, whose ADTS audio needs converting.

The pieces are joined with ffmpeg's concat demuxer, which shifts every piece's
timestamps to start where the previous piece ended. That matters across a publisher
reconnect or an ffmpeg restart, where the new run's clock starts again near zero: a
plain byte concatenation would jump back in time there and make an unplayable file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import av

__all__ = ["Mp4ExportError", "export_mp4"]

_STDERR_LINES = 15


class Mp4ExportError(RuntimeError):
    """ffmpeg could not make the MP4; the message ends with ffmpeg's last stderr lines."""


def _concat_list(segments: Sequence[Path]) -> str:
    lines = ["ffconcat version 1.0"]
    for path in segments:
        # The concat demuxer's quoting: a quote ends, an escaped quote, a quote restarts.
        quoted = str(Path(path).resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def _has_aac(path: Path) -> bool:
    with av.open(str(path)) as container:
        return any(s.type == "audio" and s.codec_context.name == "aac"
                   for s in container.streams)


def _prepare(segments: Sequence[Path], list_path: Path) -> bool:
    list_path.write_text(_concat_list(segments), encoding="utf-8")
    if Path(segments[0]).suffix != ".ts":
        return False  # MP4 audio is already in the form MP4 wants
    try:
        return _has_aac(segments[0])
    except av.error.FFmpegError:
        # Let ffmpeg itself report what is wrong with the input.
        return False


async def export_mp4(segments: Sequence[Path], out: Path, ffmpeg: str = "ffmpeg") -> None:
    """Join `segments` (fragmented MP4 or MPEG-TS files, in order) into `out`, an MP4 with
    its index at the front.

    Raises Mp4ExportError with ffmpeg's last stderr lines when ffmpeg fails, ValueError
    when there is nothing to join.
    """
    if not segments:
        raise ValueError("no segments to export")
    out = Path(out)
    list_path = out.with_name(out.name + ".ffconcat")
    partial = out.with_name(out.name + ".partial.mp4")
    adts_aac = await asyncio.to_thread(_prepare, segments, list_path)
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            # genpts fills in timestamps some pieces (a cut-off start) lack.
            "-fflags", "+genpts", "-f", "concat", "-safe", "0", "-i", str(list_path),
            "-map", "0:v?", "-map", "0:a?", "-c", "copy"]
    if adts_aac:
        args += ["-bsf:a", "aac_adtstoasc"]
    args += ["-movflags", "+faststart", "-f", "mp4", str(partial)]
    try:
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        if process.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-_STDERR_LINES:]
            raise Mp4ExportError(
                f"ffmpeg exited with {process.returncode} making {out.name}: "
                + ("\n".join(tail) or "(no output)"))
        await asyncio.to_thread(partial.replace, out)
    finally:
        with contextlib.suppress(OSError):
            list_path.unlink()
        with contextlib.suppress(OSError):
            partial.unlink()
