"""A real encoder against the RTMP server: Debian's ffmpeg publishes a test pattern and a tone
(x264 + AAC, digest handshake, its own chunking), the server writes an .flv through
FlvFileSink, and ffprobe checks what arrived. One run goes through the real control plane:
a stream key made with the HTTP API, the course live while ffmpeg publishes and not after.

Each run lasts a few seconds (-re, -t); skipped only when /usr/bin/ffmpeg is missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from mediaserver.control_inprocess import InProcessControl
from mediaserver.key_fingerprint import key_fingerprint
from mediaserver.media_sink import SinksOnly
from mediaserver.publishing import Publishing
from mediaserver.rtmp.server import RtmpServer
from support.api_client import Api
from support.client_process import run_client
from support.rtmp_to_flv import (
    COURSE,
    FFPROBE,
    KEY,
    FakeControl,
    FlvSinks,
    probe,
    server,  # noqa: F401  (the server fixture)
    streams_of,
    wait_until,
)
from support.world import World

FFMPEG = Path("/usr/bin/ffmpeg")

pytestmark = pytest.mark.skipif(
    not (FFMPEG.exists() and FFPROBE.exists()),
    reason="Debian's ffmpeg is not installed (/usr/bin/ffmpeg, /usr/bin/ffprobe): "
    "apt-get install ffmpeg",
)

async def publish_with_ffmpeg(url: str, *, seconds: float = 4, audio: bool = True) -> tuple[
    int, str
]:
    """Runs ffmpeg to the end; returns its exit code and stderr."""
    args = ["-hide_banner", "-nostats", "-loglevel", "info", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "60"]
    args += ["-c:a", "aac"] if audio else ["-an"]
    args += ["-f", "flv", url]
    return await run_client(str(FFMPEG), args, within=seconds + 30)


@pytest.mark.parametrize("suffix", ["", "?foo=bar"], ids=["plain-key", "key-with-query"])
async def test_ffmpeg_publishes_h264_and_aac(
    server: tuple[RtmpServer, FakeControl, FlvSinks], suffix: str  # noqa: F811 (the imported fixture)
) -> None:
    rtmp, control, sinks = server
    code, stderr = await publish_with_ffmpeg(f"rtmp://127.0.0.1:{rtmp.port}/live/{KEY}{suffix}")
    assert code == 0, stderr[-2000:]
    assert control.asked == [KEY]  # the ?query never reaches the control plane
    assert control.started == [COURSE]
    await wait_until(lambda: control.ended == [COURSE])
    assert len(sinks.made) == 1 and sinks.made[0].closed

    probed = await probe(sinks.made[0].path)
    (video,) = streams_of(probed, "video")
    (audio,) = streams_of(probed, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert audio["codec_name"] == "aac"
    assert abs(float(probed["format"]["duration"]) - 4) <= 1


async def test_ffmpeg_without_audio(server: tuple[RtmpServer, FakeControl, FlvSinks]) -> None:  # noqa: F811 (the imported fixture)
    rtmp, control, sinks = server
    code, stderr = await publish_with_ffmpeg(f"rtmp://127.0.0.1:{rtmp.port}/live/{KEY}",
                                             audio=False)
    assert code == 0, stderr[-2000:]
    await wait_until(lambda: control.ended == [COURSE])
    path = sinks.made[0].path
    # The header, written from ffmpeg's metadata, says "video only".
    assert path.read_bytes()[4] == 0x01
    probed = await probe(path)
    (video,) = streams_of(probed, "video")
    assert streams_of(probed, "audio") == []
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert abs(float(probed["format"]["duration"]) - 4) <= 1


async def test_ffmpeg_with_a_bad_key_fails_and_the_key_is_never_logged(
    server: tuple[RtmpServer, FakeControl, FlvSinks], caplog: pytest.LogCaptureFixture  # noqa: F811 (the imported fixture)
) -> None:
    caplog.set_level(logging.DEBUG)
    rtmp, control, sinks = server
    bad = "sk_not_a_real_key_9d8c7b6a"
    started = time.monotonic()
    code, stderr = await publish_with_ffmpeg(f"rtmp://127.0.0.1:{rtmp.port}/live/{bad}")
    assert code != 0
    assert time.monotonic() - started < 10  # refused at once, no hang
    assert "Server error: stream key refused" in stderr
    assert control.started == [] and sinks.made == []
    assert bad not in caplog.text
    assert all(bad not in repr(record.args) for record in caplog.records)
    assert key_fingerprint(bad) in caplog.text


async def test_ffmpeg_through_the_real_control_plane(
    api: Api, world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher,
                          json={"label": "ffmpeg"}, expect=201)
    key = made["key"]
    status_url = f"/courses/{world.course_id}/live-status"
    assert (await api.get(status_url, expect=200))["is_live"] is False

    sinks = FlvSinks(tmp_path)
    control = InProcessControl(api.database, api.settings.courses)
    async with RtmpServer(Publishing(control, SinksOnly(sinks)), port=0, timeout=10) as rtmp:
        encoder = asyncio.create_task(
            publish_with_ffmpeg(f"rtmp://127.0.0.1:{rtmp.port}/live/{key}", seconds=3)
        )
        deadline = time.monotonic() + 10
        while True:
            status = await api.get(status_url, expect=200)
            if status["is_live"] or encoder.done():
                break
            assert time.monotonic() < deadline, "the course never went live"
            await asyncio.sleep(0.1)
        assert status["is_live"] is True
        session_id = status["session_id"]
        assert rtmp.registry.is_live(world.course_id)

        code, stderr = await encoder
        assert code == 0, stderr[-2000:]
        await wait_until(lambda: not rtmp.registry.is_live(world.course_id))

    after = await api.get(status_url, expect=200)
    assert after["is_live"] is False
    ended = await api.get(f"/sessions/{session_id}/", world.teacher, expect=200)
    assert ended["status"] == "ended"
    assert len(sinks.made) == 1
    (video,) = streams_of(await probe(sinks.made[0].path), "video")
    assert video["codec_name"] == "h264"
    assert key not in caplog.text
