"""GStreamer's two RTMP clients against the RTMP server: rtmpsink (librtmp, the client code
OBS descends from) and rtmp2sink (GStreamer's own). gst-launch-1.0 publishes a live test
pattern through x264enc and, in most runs, a tone through an AAC encoder, muxed by flvmux;
the server writes an .flv through FlvFileSink and ffprobe checks what arrived.

One run per client uses key-int-max=240, OBS's default keyframe interval of about 8 s: the
whole run is a single GOP, so everything after the first keyframe must still be kept. One
run per client has no audio at all.

Each run publishes about 4 s (num-buffers bounds the sources, -e ends with EOS so flvmux
and the sink finish cleanly). Skipped when gst-launch-1.0, ffprobe or an element is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest
from test_rtmp_ffmpeg import (
    COURSE,
    FFPROBE,
    KEY,
    FakeControl,
    FlvSinks,
    probe,
    server,  # noqa: F401  (the same server fixture)
    streams_of,
    wait_until,
)

from mediaserver.rtmp.server import RtmpServer
from support.client_process import run_client

GST_LAUNCH = shutil.which("gst-launch-1.0")
GST_INSPECT = shutil.which("gst-inspect-1.0")
SECONDS = 4
FPS = 30
AUDIO_RATE = 44100
PACKAGES = (
    "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)


def _has_element(name: str) -> bool:
    if GST_INSPECT is None:
        return False
    found = subprocess.run(
        [GST_INSPECT, "--exists", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False,
    )
    return found.returncode == 0


def _aac_encoder() -> str | None:
    # voaacenc ships with plugins-bad (needed for the sinks anyway); avenc_aac with libav.
    for name in ("voaacenc", "avenc_aac"):
        if _has_element(name):
            return name
    return None


pytestmark = pytest.mark.skipif(
    GST_LAUNCH is None or GST_INSPECT is None or not FFPROBE.exists(),
    reason="gst-launch-1.0 / gst-inspect-1.0 or ffprobe is missing: "
    f"apt-get install {PACKAGES} ffmpeg",
)


@dataclass(frozen=True)
class Client:
    sink: str

    def location(self, port: int) -> str:
        # The plain URL an OBS user pastes. librtmp takes options after a space in the
        # location (" live=1"), but that one is for playing: rtmpsink publishes without it.
        return f"rtmp://127.0.0.1:{port}/live/{KEY}"


RTMPSINK = Client("rtmpsink")
RTMP2SINK = Client("rtmp2sink")


def _require(*elements: str) -> None:
    missing = [name for name in elements if not _has_element(name)]
    if missing:
        pytest.skip(f"GStreamer elements missing: {', '.join(missing)} "
                    f"(apt-get install {PACKAGES})")


def pipeline(client: Client, port: int, *, audio: bool, key_int_max: int) -> list[str]:
    """gst-launch-1.0's arguments, one token per list item (no shell involved)."""
    frames = SECONDS * FPS
    args = ["-e", "-q",
            "videotestsrc", "is-live=true", f"num-buffers={frames}", "!",
            f"video/x-raw,width=640,height=360,framerate={FPS}/1", "!",
            "x264enc", "tune=zerolatency", "speed-preset=ultrafast",
            f"key-int-max={key_int_max}", "!",
            "h264parse", "!",
            "flvmux", "name=mux", "streamable=true", "!",
            client.sink, f"location={client.location(port)}"]
    if audio:
        encoder = _aac_encoder()
        assert encoder is not None
        # One audio buffer per video frame, so both sources end together.
        samples = AUDIO_RATE // FPS
        args += ["audiotestsrc", "is-live=true", "wave=sine", f"samplesperbuffer={samples}",
                 f"num-buffers={frames}", "!",
                 f"audio/x-raw,rate={AUDIO_RATE},channels=2", "!",
                 "audioconvert", "!", encoder, "!", "aacparse", "!", "mux."]
    return args


async def publish_with_gstreamer(args: list[str]) -> tuple[int, str, float]:
    """Runs gst-launch-1.0 to the end; returns its exit code, its output and the wall time."""
    assert GST_LAUNCH is not None
    started = time.monotonic()
    code, output = await run_client(GST_LAUNCH, args, within=SECONDS + 30, merge_output=True)
    return code, output, time.monotonic() - started


@pytest.mark.parametrize("client", [RTMPSINK, RTMP2SINK], ids=lambda c: c.sink)
@pytest.mark.parametrize(
    ("audio", "key_int_max"),
    [(True, 60), (True, 240), (False, 60)],
    ids=["h264-aac", "h264-aac-8s-gop", "video-only"],
)
async def test_gstreamer_publishes(
    server: tuple[RtmpServer, FakeControl, FlvSinks],  # noqa: F811 (the imported fixture)
    client: Client, audio: bool,
    key_int_max: int,
) -> None:
    _require(client.sink, "x264enc", "flvmux", "h264parse", "videotestsrc")
    if audio:
        _require("audiotestsrc", "audioconvert", "aacparse")
        if _aac_encoder() is None:
            pytest.skip(f"no AAC encoder (voaacenc or avenc_aac): apt-get install {PACKAGES}")
    rtmp, control, sinks = server
    code, output, _ = await publish_with_gstreamer(
        pipeline(client, rtmp.port, audio=audio, key_int_max=key_int_max)
    )
    assert code == 0, output[-2000:]
    assert control.asked == [KEY]
    assert control.started == [COURSE]
    await wait_until(lambda: control.ended == [COURSE])
    assert len(sinks.made) == 1 and sinks.made[0].closed
    path = sinks.made[0].path
    # The FLV header's flags, written from flvmux's onMetaData: 0x01 video alone. With
    # audio, a loaded machine can make flvmux announce the video pad late (0x04 only);
    # ffprobe below still has to find both streams.
    flags = path.read_bytes()[4]
    assert flags & 0x04 if audio else flags == 0x01

    probed = await probe(path)
    (video,) = streams_of(probed, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    if audio:
        (sound,) = streams_of(probed, "audio")
        assert sound["codec_name"] == "aac"
    else:
        assert streams_of(probed, "audio") == []
    assert abs(float(probed["format"]["duration"]) - SECONDS) <= 1.5, probed["format"]
