"""GStreamer as an RTMP publisher: which elements are installed, and gst-launch-1.0's
arguments for a live test pattern (and a tone) sent by rtmpsink or rtmp2sink.
Shared by test_rtmp_gstreamer and test_live_pipeline."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import pytest

from support.rtmp_to_flv import KEY

GST_LAUNCH = shutil.which("gst-launch-1.0")
GST_INSPECT = shutil.which("gst-inspect-1.0")
SECONDS = 4
FPS = 30
AUDIO_RATE = 44100
PACKAGES = (
    "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)


def has_element(name: str) -> bool:
    if GST_INSPECT is None:
        return False
    found = subprocess.run(
        [GST_INSPECT, "--exists", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False,
    )
    return found.returncode == 0


def aac_encoder() -> str | None:
    # voaacenc ships with plugins-bad (needed for the sinks anyway); avenc_aac with libav.
    for name in ("voaacenc", "avenc_aac"):
        if has_element(name):
            return name
    return None


@dataclass(frozen=True)
class Client:
    sink: str

    def location(self, port: int) -> str:
        # The plain URL an OBS user pastes. librtmp takes options after a space in the
        # location (" live=1"), but that one is for playing: rtmpsink publishes without it.
        return f"rtmp://127.0.0.1:{port}/live/{KEY}"


def require(*elements: str) -> None:
    missing = [name for name in elements if not has_element(name)]
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
        encoder = aac_encoder()
        assert encoder is not None
        # One audio buffer per video frame, so both sources end together.
        samples = AUDIO_RATE // FPS
        args += ["audiotestsrc", "is-live=true", "wave=sine", f"samplesperbuffer={samples}",
                 f"num-buffers={frames}", "!",
                 f"audio/x-raw,rate={AUDIO_RATE},channels=2", "!",
                 "audioconvert", "!", encoder, "!", "aacparse", "!", "mux."]
    return args
