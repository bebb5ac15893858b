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

import time

import pytest

from mediaserver.rtmp.server import RtmpServer
from support.client_process import run_client
from support.gstreamer import (
    GST_INSPECT,
    GST_LAUNCH,
    PACKAGES,
    SECONDS,
    Client,
    aac_encoder,
    pipeline,
    require,
)
from support.rtmp_to_flv import (
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

pytestmark = pytest.mark.skipif(
    GST_LAUNCH is None or GST_INSPECT is None or not FFPROBE.exists(),
    reason="gst-launch-1.0 / gst-inspect-1.0 or ffprobe is missing: "
    f"apt-get install {PACKAGES} ffmpeg",
)


RTMPSINK = Client("rtmpsink")
RTMP2SINK = Client("rtmp2sink")


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
    require(client.sink, "x264enc", "flvmux", "h264parse", "videotestsrc")
    if audio:
        require("audiotestsrc", "audioconvert", "aacparse")
        if aac_encoder() is None:
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
