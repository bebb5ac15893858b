"""WHIP ingest end to end: an aiortc client publishes to a whole node over WebRTC.

The client is what a browser or OBS 30 does: a peer connection with a video track (a
moving test pattern, 640x360 at 30 fps) and an audio track (a 440 Hz sine, 48 kHz), its
offer POSTed with the stream key as a Bearer token. ICE runs on 127.0.0.1 only. The test
then plays the class as a viewer would (playback URL, playlists, segments decoded with
PyAV) and checks how it ends: DELETE or the class ended from the web app, then the
recording after the grace period. Refusals are checked without media.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from mediaserver import flv
from mediaserver.media_sink import FlvFileSink
from mediaserver.publisher_slots import Publication
from mediaserver.whip.frame_encoder import EncodedTag, FrameEncoder
from mediaserver.whip.media_clock import MediaClock
from mediaserver.whip.publisher import MAX_PENDING_VIDEO, WhipPublisher
from support.hls_validator import validate_playlists
from support.live_stack import (
    LiveStack,
    decode,
    media_playlist_uris,
    media_segments,
    stack_settings,
    wait_for,
)
from transcode.flv_feed import TagKind, flv_header, flv_tag

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg: apt-get install ffmpeg"
)

WIDTH, HEIGHT, FPS = 640, 360, 30
_VIDEO_CLOCK = fractions.Fraction(1, 90_000)
_AUDIO_CLOCK = fractions.Fraction(1, 48_000)


class PatternTrack(MediaStreamTrack):
    """A bright bar sweeping over a grey picture, in real time."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._start: float | None = None
        self._lumas = [self._luma(step * WIDTH // FPS) for step in range(FPS)]

    @staticmethod
    def _luma(x: int) -> bytes:
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        stride = frame.planes[0].line_size
        row = bytearray([90]) * stride
        row[x:x + 64] = bytes([235]) * len(row[x:x + 64])
        return bytes(row) * HEIGHT

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(self._lumas[self._count % FPS])
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = self._count * 90_000 // FPS
        frame.time_base = _VIDEO_CLOCK
        self._count += 1
        return frame


@functools.cache
def sine_second() -> bytes:
    """One second of a 440 Hz sine, s16 stereo at 48 kHz: exactly 440 periods, so it loops."""
    samples = bytearray()
    for n in range(48_000):
        value = int(8000 * math.sin(2 * math.pi * 440 * n / 48_000))
        samples += value.to_bytes(2, "little", signed=True) * 2
    return bytes(samples)


def sine_frame(count: int = 0, samples: int = 960) -> av.AudioFrame:
    """The `count`th 20 ms frame of the sine."""
    frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
    frame.sample_rate = 48_000
    start = (count * samples % 48_000) * 4
    frame.planes[0].update(sine_second()[start:start + samples * 4])
    return frame


class SineTrack(MediaStreamTrack):
    """440 Hz, 48 kHz stereo s16 in 20 ms frames, in real time."""

    kind = "audio"
    _SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._count * self._SAMPLES / 48_000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = sine_frame(self._count, self._SAMPLES)
        frame.pts = self._count * self._SAMPLES
        frame.time_base = _AUDIO_CLOCK
        self._count += 1
        return frame


async def client_offer(video_codec: str | None = None) -> RTCPeerConnection:
    """A sendonly peer connection with its offer set (ICE gathered), as OBS makes one."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver(PatternTrack(), direction="sendonly")
    if video_codec is not None:
        video.setCodecPreferences([
            codec for codec in RTCRtpSender.getCapabilities("video").codecs
            if codec.mimeType == f"video/{video_codec}"
        ])
    pc.addTransceiver(SineTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def post_offer(stack: LiveStack, sdp: str, *, course_id: int | None = None,
                     key: str | None = None, content_type: str = "application/sdp",
                     authorization: str | None = None) -> tuple[int, str, dict[str, str]]:
    assert stack.http is not None
    headers = {"Content-Type": content_type,
               "Authorization": authorization or f"Bearer {key or stack.key}"}
    if authorization == "":
        del headers["Authorization"]
    async with stack.http.post(f"/whip/{course_id or stack.course_id}", data=sdp.encode(),
                               headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


async def request(stack: LiveStack, method: str, path: str, **kwargs: object) -> int:
    assert stack.http is not None
    async with stack.http.request(method, path, **kwargs) as response:  # type: ignore[arg-type]
        await response.read()
        return response.status


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LiveStack]:
    overrides: dict[str, Any] = {"reconnect_grace_seconds": 2,
                                 **getattr(request, "param", {})}
    settings = stack_settings(tmp_path / "var", whip_ice_addresses="127.0.0.1",
                              whip_video_kbps=1000, **overrides)
    async with LiveStack(settings) as live:
        yield live


async def first_segment(stack: LiveStack, session_id: int,
                        rendition: str = "mobile") -> dict[str, object]:
    """The first segment of a live rendition, decoded after its init as a player would,
    once its playlist lists one (playlists checked by a strict parser on the way)."""
    playback = await stack.playback(session_id)
    assert playback["kind"] == "live"
    base = playback["url"].rsplit("/", 1)[0]
    url = f"{base}/{rendition}/index.m3u8"

    async def segment() -> bytes | None:
        status, body, _ = await stack.get(url)
        segments = media_segments(body.decode()) if status == 200 else []
        if not segments:
            return None
        validate_playlists({url: body.decode()})
        return await stack.segment_media(url, segments[0])

    return decode(await wait_for(segment, within=30, what=f"a {rendition} segment"))


async def live_ladder(stack: LiveStack, session_id: int) -> list[str]:
    """The media playlists the live master names, all of them checked by a strict parser."""
    playback = await stack.playback(session_id)
    base = playback["url"].rsplit("/", 1)[0]
    status, body, _ = await stack.get(playback["url"])
    assert status == 200, body
    playlists = {"master.m3u8": body.decode()}
    uris = media_playlist_uris(playlists["master.m3u8"])
    for uri in uris:
        status, body, _ = await stack.get(f"{base}/{uri}")
        assert status == 200, (uri, body)
        playlists[uri] = body.decode()
    validate_playlists(playlists)
    return uris


async def test_a_vp8_publish_plays_as_the_ladder_and_ends_with_delete(
    stack: LiveStack, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pc = await client_offer()  # aiortc's default: VP8
    status, answer, headers = await post_offer(stack, pc.localDescription.sdp)
    assert status == 201, answer
    assert headers["Content-Type"] == "application/sdp"
    location = headers["Location"]
    assert re.fullmatch(rf"/whip/{stack.course_id}/[0-9a-f]{{32}}", location)
    # Complete, no trickle needed: our loopback candidate is in the answer.
    assert answer.startswith("v=0") and "a=candidate:" in answer and "127.0.0.1" in answer
    assert "VP8" in answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        session_id = await stack.live_session_id()

        # One publisher per course: a second WHIP publisher gets RTMP's refusal.
        second = await client_offer()
        status, body, _ = await post_offer(stack, second.localDescription.sdp)
        await second.close()
        assert status == 409, body
        assert '"course_busy"' in body and "already live from another encoder" in body

        decoded = await first_segment(stack, session_id)
        assert decoded["size"] == (WIDTH, HEIGHT) and decoded["first_keyframe"]
        # The video rung is video only; the sound is the shared audio rendition's.
        assert decoded["video"] == ["h264"] and decoded["audio"] == []
        sound = await first_segment(stack, session_id, "audio")
        assert sound["audio"] == ["aac"] and sound["video"] == []
        assert await live_ladder(stack, session_id) == ["audio/index.m3u8",
                                                        "mobile/index.m3u8"]
        stream = (await stack.live_status())["stream"]
        assert stream["publisher_connected"]
        assert stream["input"]["video_codec"] == "h264"
        assert stream["input"]["audio_codec"] == "aac"
        assert (stream["input"]["width"], stream["input"]["height"]) == (WIDTH, HEIGHT)
        assert [r["name"] for r in stream["renditions"]] == ["mobile", "audio"]
        await asyncio.sleep(1)  # a few more seconds in the recording
    finally:
        trickle = await request(stack, "PATCH", location, data=b"a=end-of-candidates\r\n",
                                headers={"Content-Type": "application/trickle-ice-sdpfrag"})
        assert await request(stack, "DELETE", location) == 200
        await pc.close()
    assert trickle == 204
    assert await request(stack, "DELETE", location) == 404  # gone with the publish
    assert stack.node is not None and stack.node.whip.publishers == []
    assert not stack.node.rtmp.registry.is_live(stack.course_id)

    # Still live during the grace period, then ended with its recording.
    assert (await stack.live_status())["is_live"]
    session = await stack.recording_ready(session_id)
    assert session["status"] == "ended"
    recording = decode((await stack.get((await stack.playback(session_id))["download_url"]))[1])
    assert recording["video"] == ["h264"] and recording["audio"] == ["aac"]
    assert recording["size"] == (WIDTH, HEIGHT) and recording["duration"] >= 3
    assert stack.key not in caplog.text


async def test_an_h264_publish_plays_and_end_live_disconnects_it(stack: LiveStack) -> None:
    pc = await client_offer("H264")
    status, answer, headers = await post_offer(stack, pc.localDescription.sdp)
    assert status == 201, answer
    assert "H264" in answer and "VP8" not in answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        session_id = await stack.live_session_id()
        decoded = await first_segment(stack, session_id)
        assert decoded["size"] == (WIDTH, HEIGHT) and decoded["video"] == ["h264"]
        assert decoded["frames"]
        assert (await first_segment(stack, session_id, "audio"))["audio"] == ["aac"]

        # Ending the class from the web app cuts the WebRTC publisher off at once.
        await stack.json("POST", f"/courses/{stack.course_id}/end-live")
        assert stack.node is not None
        node = stack.node
        await wait_for(lambda: not node.whip.publishers, within=10,
                       what="the WHIP publish to end")
        assert await request(stack, "DELETE", headers["Location"]) == 404
        session = await stack.recording_ready(session_id)
        assert session["status"] == "ended"
    finally:
        await pc.close()


async def publish(stack: LiveStack) -> tuple[RTCPeerConnection, str]:
    """A connected WHIP publish: (the client's peer connection, the resource URL)."""
    pc = await client_offer()
    status, answer, headers = await post_offer(stack, pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, headers["Location"]


@pytest.mark.parametrize("stack", [{"reconnect_grace_seconds": 8}], indirect=True)
async def test_a_dropped_connection_waits_for_the_publisher_to_come_back(
    stack: LiveStack,
) -> None:
    assert stack.node is not None
    node = stack.node
    first, _ = await publish(stack)
    session_id = await stack.live_session_id()
    await first_segment(stack, session_id)
    # The browser tab closes: no DELETE, the connection just closes.
    await first.close()
    await wait_for(lambda: not node.whip.publishers, within=15, what="the publish to end")
    assert not node.rtmp.registry.is_live(stack.course_id)
    assert (await stack.live_status())["session_id"] == session_id  # waiting, still live

    second, location = await publish(stack)
    try:
        assert await stack.live_session_id() == session_id  # the same class goes on
        await asyncio.sleep(4)
        assert await request(stack, "DELETE", location) == 200
    finally:
        await second.close()
    await stack.recording_ready(session_id)
    replay = await stack.playback(session_id)
    url = replay["url"].replace("master.m3u8", "mobile/index.m3u8")
    _, body, _ = await stack.get(url)
    validate_playlists({url: body.decode()})
    segments = media_segments(body.decode())
    assert sum(s.discontinuity for s in segments) == 1  # where the publisher came back
    # Where it came back, a new init: both runs decode.
    resumed = next(s for s in segments if s.discontinuity)
    assert resumed.init is not None and resumed.init != segments[0].init
    for segment in (segments[0], resumed):
        assert decode(await stack.segment_media(url, segment))["size"] == (WIDTH, HEIGHT)


async def test_refusals(stack: LiveStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pc = await client_offer()
    offer = pc.localDescription.sdp
    await pc.close()
    other_course, other_key = await stack.add_course("Another course")

    status, body, headers = await post_offer(stack, offer, key="not-a-stream-key")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert '"unauthorized"' in body
    status, body, headers = await post_offer(stack, offer, authorization="")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = await post_offer(stack, offer, authorization="Basic YWRtaW46YWRtaW4=")
    assert status == 401
    # Another course's good key: refused, without saying which course it belongs to.
    status, body, _ = await post_offer(stack, offer, key=other_key)
    assert status == 401 and str(other_course) not in body

    status, body, _ = await post_offer(stack, offer, content_type="text/plain")
    assert status == 415 and '"error"' in body
    status, body, _ = await post_offer(stack, "this is not SDP")
    assert status == 400 and '"malformed_sdp"' in body
    status, body, _ = await post_offer(stack, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n")
    assert status == 400 and "no audio or video" in body
    # Looks like an offer, but aiortc cannot use it (no ICE credentials, no DTLS).
    broken = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    status, body, _ = await post_offer(stack, broken)
    assert status == 400 and '"malformed_sdp"' in body
    simulcast = offer.replace("a=sendonly", "a=sendonly\r\na=simulcast:send h;l", 1)
    status, body, _ = await post_offer(stack, simulcast)
    assert status == 400 and "simulcast" in body

    unknown = f"/whip/{stack.course_id}/{'ab' * 16}"
    assert await request(stack, "DELETE", unknown) == 404
    assert await request(stack, "PATCH", unknown, data=b"",
                         headers={"Content-Type": "application/trickle-ice-sdpfrag"}) == 404
    # Nothing of that made the course live or held its slot.
    assert not (await stack.live_status())["is_live"]
    assert stack.node is not None and len(stack.node.rtmp.registry) == 0
    assert stack.key not in caplog.text and other_key not in caplog.text


def test_rtp_timestamps_are_unwrapped_and_tracks_placed_by_arrival() -> None:
    now = [100.0]
    clock = MediaClock(now=lambda: now[0])
    near_wrap = (1 << 32) - 90_000  # one second before the 32-bit RTP clock wraps
    assert clock.ms("video", near_wrap, _VIDEO_CLOCK) == 0
    now[0] += 0.5
    assert clock.ms("audio", 12_345, _AUDIO_CLOCK) == 500  # first audio arrives 0.5 s in
    assert clock.ms("video", 45_000, _VIDEO_CLOCK) == 1500  # wrapped: 1.5 s after the first
    assert clock.ms("audio", 12_345 + 48_000, _AUDIO_CLOCK) == 1500
    assert clock.ms("video", 0, _VIDEO_CLOCK) == 1500  # a late, earlier frame: never back


class _StuckEncoder(FrameEncoder):
    """Blocks the encoder thread until released, as a saturated CPU would."""

    def __init__(self) -> None:
        super().__init__(has_video=True, has_audio=False)
        self.release = threading.Event()
        self.seen = 0

    def video(self, frame: av.VideoFrame, ts_ms: int) -> list[EncodedTag]:
        self.release.wait(30)
        self.seen += 1
        return [EncodedTag("video", ts_ms, b"\x27\x01\x00\x00\x00")]

    def flush(self) -> list[EncodedTag]:
        return []


class _FrameList(MediaStreamTrack):
    kind = "video"

    def __init__(self, count: int) -> None:
        super().__init__()
        self._left = count

    async def recv(self) -> av.VideoFrame:
        if not self._left:
            raise MediaStreamError
        self._left -= 1
        frame = av.VideoFrame(16, 16, "yuv420p")
        frame.pts, frame.time_base = (100 - self._left) * 3000, _VIDEO_CLOCK
        return frame


async def test_a_slow_encoder_drops_video_frames_instead_of_queueing_them(
    tmp_path: Path,
) -> None:
    encoder = _StuckEncoder()
    sink = FlvFileSink(tmp_path / "out.flv")
    gone: list[WhipPublisher] = []

    async def on_gone(publisher: WhipPublisher) -> None:
        gone.append(publisher)

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher = WhipPublisher("ab" * 16, Publication(1, 1, "test"), pc, [_FrameList(100)], sink,
                              encoder, on_gone=on_gone, timeout=60)
    publisher.start()
    await wait_for(lambda: sum(publisher.dropped.values()) == 100 - MAX_PENDING_VIDEO,
                   within=10, what="frames beyond the limit to be dropped")
    encoder.release.set()
    await publisher.close("test over")
    # About a second's worth was in or waiting for the encoder: all of it delivered.
    assert encoder.seen == MAX_PENDING_VIDEO == sink.video_tags
    assert publisher.dropped["video"] == 100 - MAX_PENDING_VIDEO
    assert sink.closed and gone == [publisher]


def test_the_frame_encoder_makes_an_flv_stream_ffmpeg_reads(tmp_path: Path) -> None:
    encoder = FrameEncoder(has_video=True, has_audio=True, preset="ultrafast", video_kbps=500)
    tags: list[EncodedTag] = []
    for index in range(120):  # 4 s at 30 fps; the browser halves its size after 3 s
        width, height = (320, 180) if index < 90 else (160, 90)
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(index * 7) % 256]) * plane.buffer_size)
        frame.pict_type = av.video.frame.PictureType.I  # decoded keyframes must not leak
        tags += encoder.video(frame, index * 1000 // 30)
        if index % 3 == 0:  # 100 ms of audio every 3 frames
            for step in range(5):
                tags += encoder.audio(sine_frame(), index * 1000 // 30 + step * 20)
    tags += encoder.flush()
    assert tags[0].kind == "metadata" and tags[0].metadata["width"] == 320.0
    path = tmp_path / "whip.flv"
    with path.open("wb") as out:
        out.write(flv_header())
        for tag in tags:
            if tag.kind == "metadata":
                out.write(flv.metadata_tag(tag.metadata))
            else:
                kind = TagKind.AUDIO if tag.kind == "audio" else TagKind.VIDEO
                out.write(flv_tag(kind, tag.ts_ms, tag.body))
    for track in ("video", "audio"):
        stamps = [t.ts_ms for t in tags if t.kind == track]
        assert stamps == sorted(stamps)
    with av.open(str(path)) as container:
        pictures = list(container.decode(video=0))
    assert len(pictures) == 120
    assert {(p.width, p.height) for p in pictures} == {(320, 180)}
    assert [i for i, p in enumerate(pictures) if p.key_frame] == [0, 60]  # every 2 s
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        sound = list(container.decode(audio=0))
    assert abs(sum(s.samples for s in sound) / 48_000 - 4) < 0.2

