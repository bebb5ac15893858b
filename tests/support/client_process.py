"""Runs a real streaming client (ffmpeg, gst-launch-1.0) to its end, never past a deadline."""

from __future__ import annotations

import asyncio


async def run_client(program: str, args: list[str], *, within: float,
                     merge_output: bool = False) -> tuple[int, str]:
    """The client's exit code and its stderr (with merge_output, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        program, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if merge_output else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.STDOUT if merge_output else asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    finally:
        # A client that hangs must not outlive its test.
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, (stdout if merge_output else stderr).decode(errors="replace")
