"""The rig real encoders publish to: an in-process RTMP server whose fake control knows one
key, an .flv file per publication (FlvFileSink), and ffprobe to read what arrived.
Shared by test_rtmp_ffmpeg and test_rtmp_gstreamer."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mediaserver.control_port import PublishAllowed, PublishDecision, PublishDenied
from mediaserver.media_sink import FlvFileSink, SinksOnly
from mediaserver.publishing import Publishing
from mediaserver.rtmp.server import RtmpServer
from support.control_fakes import IngestOnlyControl

FFPROBE = Path("/usr/bin/ffprobe")

KEY = "sk_ffmpeg_test_4f9a2c7e1b"
COURSE = 21


@dataclass
class FakeControl(IngestOnlyControl):
    asked: list[str] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        self.asked.append(key)
        if app == "live" and key == KEY:
            return PublishAllowed(COURSE)
        return PublishDenied("unknown_key")

    async def session_goes_live(self, course_id: int) -> int:
        self.started.append(course_id)
        return 500 + len(self.started)

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        self.ended.append(course_id)


@dataclass
class FlvSinks:
    folder: Path
    made: list[FlvFileSink] = field(default_factory=list)

    def __call__(self, course_id: int, session_id: int) -> FlvFileSink:
        sink = FlvFileSink(self.folder / f"course{course_id}-session{session_id}.flv")
        self.made.append(sink)
        return sink


async def probe(path: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(FFPROBE), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
        str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(stdout)
    return result


def streams_of(probed: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in probed["streams"] if s["codec_type"] == kind]


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    control = FakeControl()
    sinks = FlvSinks(tmp_path)
    rtmp = RtmpServer(Publishing(control, SinksOnly(sinks)), host="127.0.0.1", port=0, timeout=10)
    await rtmp.start()
    try:
        yield rtmp, control, sinks
    finally:
        await rtmp.close()


async def wait_until(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
