"""A request the HTTP parser cannot read is answered 400 and logged as the client's fault:
one INFO line, no traceback at ERROR that anyone could flood the log with."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from support.live_stack import LiveStack, stack_settings

MALFORMED = {
    "request line over the parser's limit": (
        b"GET /courses/?cursor=" + b"%5B" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    ),
    "NUL byte in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Trap: a\x00b\r\n\r\n",
    "header line over the parser's limit": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n"
    ),
}


async def _send_raw(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 5)
    finally:
        writer.close()


async def test_malformed_requests_are_400_and_log_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with LiveStack(stack_settings(tmp_path)) as stack:
        assert stack.node is not None
        port = stack.node.http_port
        caplog.set_level(logging.DEBUG)
        for what, payload in MALFORMED.items():
            caplog.clear()
            answer = await _send_raw(port, payload)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer, what
            loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert loud == [], f"{what}: {[r.getMessage()[:200] for r in loud]}"
            noted = [r for r in caplog.records if r.name == "aiohttp.server"]
            assert noted and all(r.exc_info is None and "\n" not in r.getMessage()
                                 for r in noted), what
        # The node still answers well-formed requests.
        assert await stack.json("GET", "/categories/", auth=False) is not None
