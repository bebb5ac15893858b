"""The RTMP server in-process: a scripted client built from our own RTMP modules speaks to it
over real sockets, with a fake ControlPort and a recording sink.

Covers the OBS command sequence and its exact replies, media reaching the sink (every chunk
header type, extended timestamps, chunk-size changes both ways, acknowledgements), refusals
(bad key, busy course, Enhanced RTMP, play), hostile input that must close only its own
connection, timeouts, and connection floods.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mediaserver import amf0
from mediaserver.amf0 import Amf0Value
from mediaserver.control_port import (
    ControlUnavailable,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)
from mediaserver.key_fingerprint import key_fingerprint
from mediaserver.media_sink import SinksOnly
from mediaserver.publisher_slots import PublisherSlots, RegistryFull
from mediaserver.publishing import Publishing
from mediaserver.rtmp import messages
from mediaserver.rtmp.chunks import ChunkWriter, Message
from mediaserver.rtmp.handshake import client_c0c1
from mediaserver.rtmp.messages import MessageType, UserControlEvent
from mediaserver.rtmp.server import RtmpServer
from support.control_fakes import IngestOnlyControl
from support.rtmp_client import GOOD_KEY, Client, aac_frame, avc_frame

OTHER_KEY = "sk_other_0123456789abcdef"
BAD_KEY = "sk_wrong_fedcba9876543210"
GOOD_COURSE = 11
OTHER_COURSE = 12

# An AVC sequence header and an AAC one, as encoders send them first (FLV tag bodies).
AVC_HEADER = bytes([0x17, 0x00, 0, 0, 0]) + bytes(range(40))
AAC_HEADER = bytes([0xAF, 0x00, 0x12, 0x10])


# --- fakes -------------------------------------------------------------------------------


@dataclass
class FakeControl(IngestOnlyControl):
    """Keys map to courses; every call is recorded."""

    keys: dict[str, int] = field(
        default_factory=lambda: {GOOD_KEY: GOOD_COURSE, OTHER_KEY: OTHER_COURSE}
    )
    asked: list[tuple[str, str]] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    unavailable: bool = False
    gate: asyncio.Event | None = None  # when set, key checks wait for it

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        self.asked.append((app, key))
        if self.gate is not None:
            await self.gate.wait()
        if self.unavailable:
            raise ControlUnavailable("database down")
        if app != "live":
            return PublishDenied("wrong_app")
        course = self.keys.get(key)
        return PublishDenied("unknown_key") if course is None else PublishAllowed(course)

    async def session_goes_live(self, course_id: int) -> int:
        self.started.append(course_id)
        return 1000 + len(self.started)

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        self.ended.append(course_id)


@dataclass
class RecordingSink:
    course_id: int
    session_id: int
    metadata: list[dict[str, Amf0Value]] = field(default_factory=list)
    audio: list[tuple[int, bytes]] = field(default_factory=list)
    video: list[tuple[int, bytes]] = field(default_factory=list)
    closed: bool = False

    def on_metadata(self, data: dict[str, Amf0Value]) -> None:
        self.metadata.append(dict(data))

    def on_audio(self, ts: int, payload: bytes) -> None:
        self.audio.append((ts, payload))

    def on_video(self, ts: int, payload: bytes) -> None:
        self.video.append((ts, payload))

    async def close(self) -> None:
        self.closed = True


@dataclass
class Harness:
    control: FakeControl
    sinks: list[RecordingSink]
    servers: list[RtmpServer]

    def sink_factory(self, course_id: int, session_id: int) -> RecordingSink:
        sink = RecordingSink(course_id, session_id)
        self.sinks.append(sink)
        return sink

    async def server(self, **kwargs: Any) -> RtmpServer:
        kwargs.setdefault("timeout", 5.0)
        publishing = Publishing(self.control, SinksOnly(self.sink_factory),
                                registry=kwargs.pop("registry", None))
        server = RtmpServer(publishing, host="127.0.0.1", port=0, **kwargs)
        await server.start()
        self.servers.append(server)
        return server


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(FakeControl(), [], [])
    try:
        yield h
    finally:
        for server in h.servers:
            await server.close()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def publisher(port: int, key: str = GOOD_KEY, source: str | None = None) -> Client:
    client = await Client.open(port, source)
    await client.start_publishing(key)
    return client


# --- the OBS dialogue --------------------------------------------------------------------


@pytest.mark.parametrize("digest", [False, True], ids=["plain", "digest"])
async def test_obs_sequence_gets_the_replies_it_waits_for(harness: Harness, digest: bool) -> None:
    server = await harness.server(chunk_size=4096)
    client = await Client.open(server.port)
    await client.handshake(digest=digest)

    result = await client.connect()
    assert result == [
        "_result", 1.0,
        {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
        {"level": "status", "code": "NetConnection.Connect.Success",
         "description": "Connection succeeded.", "objectEncoding": 0.0},
    ]
    # Before _result: Window Ack Size, Set Peer Bandwidth, then our Set Chunk Size.
    control = [(m.type_id, m.payload) for m in client.received[:3]]
    assert control == [
        (MessageType.WINDOW_ACK_SIZE, (2_500_000).to_bytes(4, "big")),
        (MessageType.SET_PEER_BANDWIDTH, (2_500_000).to_bytes(4, "big") + b"\x02"),
        (MessageType.SET_CHUNK_SIZE, (4096).to_bytes(4, "big")),
    ]
    assert client.chunks.chunk_size == 4096

    stream_id = await client.create_stream(GOOD_KEY)
    info = await client.publish(GOOD_KEY, int(stream_id))
    assert info == {"level": "status", "code": "NetStream.Publish.Start",
                    "description": "publishing started"}
    stream_begin = [m for m in client.received if m.type_id == MessageType.USER_CONTROL]
    assert messages.parse_user_control(stream_begin[0].payload) == (
        UserControlEvent.STREAM_BEGIN, (1).to_bytes(4, "big"))
    assert harness.control.asked == [("live", GOOD_KEY)]
    assert harness.control.started == [GOOD_COURSE]
    assert server.registry.is_live(GOOD_COURSE)

    client.metadata({"width": 640.0, "height": 360.0, "videocodecid": 7.0,
                     "audiocodecid": 10.0})
    client.media(MessageType.VIDEO, 0, AVC_HEADER)
    client.media(MessageType.AUDIO, 0, AAC_HEADER)
    client.stream_media(range(1, 31))
    await eventually(lambda: len(harness.sinks) == 1 and len(harness.sinks[0].video) == 31)
    sink = harness.sinks[0]
    assert (sink.course_id, sink.session_id) == (GOOD_COURSE, 1001)
    assert sink.metadata == [{"width": 640.0, "height": 360.0, "videocodecid": 7.0,
                              "audiocodecid": 10.0}]
    assert sink.video[0] == (0, AVC_HEADER)
    assert sink.video[5] == (5 * 33, avc_frame(5))
    assert sink.audio[0] == (0, AAC_HEADER)
    assert sink.audio[30] == (30 * 23, aac_frame(30))

    # OBS stops: FCUnpublish, deleteStream, then it hangs up.
    client.command("FCUnpublish", 6.0, None, GOOD_KEY)
    client.command("deleteStream", 7.0, None, stream_id)
    assert await client.next_command() == ["_result", 6.0, None]
    status = await client.next_command()
    assert status[3] == {"level": "status", "code": "NetStream.Unpublish.Success",
                         "description": "publishing stopped"}
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])
    assert sink.closed
    assert not server.registry.is_live(GOOD_COURSE)
    client.close()


async def test_acknowledgements_follow_the_clients_window(harness: Harness) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    client.send(messages.window_ack_size(10_000))
    acks: list[int] = []
    for batch in range(4):
        # ~12 kB each, a window's worth and more; one ack per read at most, like nginx-rtmp.
        client.stream_media(range(batch * 10, batch * 10 + 10))
        while len(acks) <= batch:
            message = await client.receive()
            if message.type_id == MessageType.ACKNOWLEDGEMENT:
                acks.append(messages.parse_u32(message.payload))
    assert acks[0] >= 10_000
    assert all(b - a >= 10_000 for a, b in itertools.pairwise(acks))
    # A ping is answered with its own timestamp.
    client.send(messages.ping_request(123456))
    while True:
        message = await client.receive()
        if message.type_id == MessageType.USER_CONTROL:
            assert messages.parse_user_control(message.payload) == (
                UserControlEvent.PING_RESPONSE, (123456).to_bytes(4, "big"))
            break
    client.close()


def compressed_chunks(outgoing: list[Message], chunk_size: int) -> bytes:
    """Chunks as librtmp writes them: the smallest header type that fits, extended
    timestamps repeated on type-3 chunks. Chunk stream ids below 64 only."""

    @dataclass
    class Last:
        ts: int
        length: int
        type_id: int
        stream_id: int
        delta: int

    last: dict[int, Last] = {}
    out = bytearray()
    for m in outgoing:
        prev = last.get(m.chunk_stream_id)
        length = len(m.payload)
        if prev is None or prev.stream_id != m.stream_id or m.timestamp < prev.ts:
            fmt, field_ts = 0, m.timestamp
        elif (length, m.type_id) != (prev.length, prev.type_id):
            fmt, field_ts = 1, m.timestamp - prev.ts
        elif m.timestamp - prev.ts != prev.delta:
            fmt, field_ts = 2, m.timestamp - prev.ts
        else:
            fmt, field_ts = 3, prev.delta
        ext = field_ts.to_bytes(4, "big") if field_ts >= 0xFFFFFF else b""
        short = min(field_ts, 0xFFFFFF).to_bytes(3, "big")
        header = bytes([fmt << 6 | m.chunk_stream_id])
        if fmt == 0:
            header += short + length.to_bytes(3, "big") + bytes([m.type_id])
            header += m.stream_id.to_bytes(4, "little")
        elif fmt == 1:
            header += short + length.to_bytes(3, "big") + bytes([m.type_id])
        elif fmt == 2:
            header += short
        out += header + ext + m.payload[:chunk_size]
        for offset in range(chunk_size, length, chunk_size):
            out += bytes([3 << 6 | m.chunk_stream_id]) + ext + m.payload[offset:offset + chunk_size]
        last[m.chunk_stream_id] = Last(m.timestamp, length, m.type_id, m.stream_id, field_ts)
    return bytes(out)


async def test_every_header_type_extended_timestamps_and_chunk_size_changes(
    harness: Harness,
) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    # Back to small chunks so every message spans several.
    client.set_chunk_size(128)
    big = 0xFFFFFF + 5_000  # needs the extended timestamp field
    video_ts = [0, 33, 66, 100, 133, 166, big, big + 33, big + 66, big + 66 + 0xFFFFFF + 1]
    audio_ts = [0, 23, 46, 69, big, big + 23]
    outgoing = [Message(MessageType.VIDEO, 1, ts, avc_frame(i, 300), 6)
                for i, ts in enumerate(video_ts)]
    # A length change forces a type-1 header.
    outgoing[3] = Message(MessageType.VIDEO, 1, video_ts[3], avc_frame(3, 500), 6)
    outgoing += [Message(MessageType.AUDIO, 1, ts, aac_frame(i), 4)
                 for i, ts in enumerate(audio_ts)]
    # A fresh chunk stream whose first (type-0) header carries an extended timestamp.
    outgoing.append(Message(MessageType.VIDEO, 1, big + 200, avc_frame(99, 1000), 7))
    client.writer.write(compressed_chunks(outgoing, 128))
    await eventually(lambda: len(harness.sinks[0].video) == len(video_ts) + 1
                     and len(harness.sinks[0].audio) == len(audio_ts))
    sink = harness.sinks[0]
    assert [ts for ts, _ in sink.video] == [*video_ts, big + 200]
    assert [ts for ts, _ in sink.audio] == audio_ts
    assert [p for _, p in sink.video] == [m.payload for m in outgoing if m.type_id == 9]
    client.close()


async def test_aggregate_messages_are_unpacked(harness: Harness) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    records = b""
    for n, ts in enumerate((500, 533, 566)):
        body = avc_frame(n, 50)
        records += bytes([9]) + len(body).to_bytes(3, "big") + ts.to_bytes(3, "big")
        records += b"\x00" + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(4, "big")
    client.send(Message(MessageType.AGGREGATE, 1, 1000, records, 6))
    await eventually(lambda: len(harness.sinks[0].video) == 3)
    assert [ts for ts, _ in harness.sinks[0].video] == [1000, 1033, 1066]
    client.close()


async def test_key_query_and_url_pasted_whole(harness: Harness) -> None:
    server = await harness.server()
    client = await Client.open(server.port)
    await client.handshake()
    await client.connect()
    stream_id = await client.create_stream(GOOD_KEY + "?foo=bar")
    info = await client.publish(GOOD_KEY + "?foo=bar", int(stream_id))
    assert info["code"] == "NetStream.Publish.Start"
    assert harness.control.asked == [("live", GOOD_KEY)]
    client.close()
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])

    # rtmp://host/live/KEY pasted into OBS's server field, stream key left empty.
    client = await Client.open(server.port)
    await client.handshake()
    await client.connect(app=f"live/{OTHER_KEY}")
    stream_id = await client.create_stream("")
    info = await client.publish("", int(stream_id))
    assert info["code"] == "NetStream.Publish.Start"
    assert harness.control.asked[-1] == ("live", OTHER_KEY)
    client.close()


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(("app", "reason"), [("live", "unknown_key"), ("other", "wrong_app")])
async def test_bad_key_is_refused_and_never_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture, app: str, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await harness.server()
    client = await Client.open(server.port)
    await client.handshake()
    await client.connect(app=app)
    stream_id = await client.create_stream(BAD_KEY)
    info = await client.publish(BAD_KEY, int(stream_id))
    assert info["level"] == "error"
    assert info["code"] == "NetStream.Publish.BadName"
    assert "refused" in str(info["description"])
    assert BAD_KEY not in str(info)
    assert await client.closed()
    assert harness.sinks == [] and harness.control.started == []
    assert len(server.registry) == 0
    assert BAD_KEY not in caplog.text
    assert all(BAD_KEY not in repr(r.args) for r in caplog.records)
    assert f"publish refused ({reason}), key {key_fingerprint(BAD_KEY)}" in caplog.text


async def test_second_publisher_on_a_live_course_is_refused(harness: Harness) -> None:
    server = await harness.server()
    first = await publisher(server.port)
    first.stream_media(range(0, 5))
    await eventually(lambda: len(harness.sinks[0].video) == 5)

    second = await Client.open(server.port)
    await second.handshake()
    await second.connect()
    stream_id = await second.create_stream(GOOD_KEY)
    info = await second.publish(GOOD_KEY, int(stream_id))
    assert info == {"level": "error", "code": "NetStream.Publish.BadName",
                    "description": "this course is already live from another encoder"}
    assert await second.closed()

    # The first goes on untouched; the course went live once and has not ended.
    first.stream_media(range(5, 10))
    await eventually(lambda: len(harness.sinks[0].video) == 10)
    assert len(harness.sinks) == 1
    assert harness.control.started == [GOOD_COURSE] and harness.control.ended == []
    assert server.registry.is_live(GOOD_COURSE)
    first.close()
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])


@pytest.mark.parametrize("where", ["video tag", "metadata"])
async def test_enhanced_rtmp_is_refused_clearly(
    harness: Harness, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    if where == "video tag":
        # IsExHeader | keyframe, PacketType 0 (sequence start), FourCC hvc1.
        client.media(MessageType.VIDEO, 0, bytes([0x90]) + b"hvc1" + bytes(30))
    else:
        client.metadata({"videocodecid": float(int.from_bytes(b"hvc1", "big"))})
    reply = await client.next_command()
    info = reply[3]
    assert isinstance(info, dict)
    assert info["level"] == "error"
    assert info["code"] == "NetStream.Publish.Rejected"
    assert "H.264" in str(info["description"])
    assert await client.closed()
    assert "Enhanced RTMP" in caplog.text and "hvc1" in caplog.text
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])
    assert harness.sinks[0].closed and harness.sinks[0].video == []
    assert len(server.registry) == 0


async def test_play_is_refused_and_unknown_calls_get_an_error(harness: Harness) -> None:
    server = await harness.server()
    client = await Client.open(server.port)
    await client.handshake()
    await client.connect()
    client.command("_checkbw", 9.0, None)
    error = await client.next_command()
    assert error[:3] == ["_error", 9.0, None]
    client.command("play", 10.0, None, GOOD_KEY, stream_id=1)
    status = await client.next_command()
    assert isinstance(status[3], dict) and status[3]["code"] == "NetStream.Play.Failed"
    assert await client.closed()


async def test_control_plane_down_means_try_again(harness: Harness) -> None:
    server = await harness.server()
    harness.control.unavailable = True
    client = await Client.open(server.port)
    await client.handshake()
    await client.connect()
    info = await client.publish(GOOD_KEY)
    assert info["code"] == "NetStream.Publish.Failed"
    assert "try again" in str(info["description"])
    assert await client.closed()
    assert len(server.registry) == 0


async def test_capacity_of_live_streams(harness: Harness) -> None:
    server = await harness.server(registry=PublisherSlots(max_streams=1))
    first = await publisher(server.port)
    second = await Client.open(server.port)
    await second.handshake()
    await second.connect()
    info = await second.publish(OTHER_KEY)
    assert info["code"] == "NetStream.Publish.Rejected"
    assert await second.closed()
    first.close()


def test_registry_claims() -> None:
    registry = PublisherSlots(max_streams=2)
    first = registry.claim(1, 1, "a")
    assert not isinstance(first, RegistryFull)
    assert registry.claim(1, 2, "b") is RegistryFull.COURSE_BUSY
    assert not isinstance(registry.claim(2, 3, "c"), RegistryFull)
    assert registry.claim(3, 4, "d") is RegistryFull.AT_CAPACITY
    stale = registry.get(2)
    assert stale is not None
    registry.release(first)
    registry.release(first)  # twice is harmless
    assert not registry.is_live(1) and registry.is_live(2) and len(registry) == 1
    again = registry.claim(2, 5, "e")
    assert again is RegistryFull.COURSE_BUSY
    assert [p.course_id for p in registry.publications()] == [2]


# --- hostile input -----------------------------------------------------------------------


async def test_garbage_closes_only_its_own_connection(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await harness.server()
    good = await publisher(server.port)
    good.stream_media(range(0, 3))

    # Before the handshake: an HTTP request, a TLS hello, random bytes.
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00", b"\x00" * 3000):
        bad = await Client.open(server.port)
        bad.writer.write(junk)
        assert await bad.closed()

    # After the handshake: chunks that cannot be, a huge declared message, broken AMF.
    after: list[bytes] = [
        b"\xff" * 200,  # type-3 chunk on a chunk stream never opened
        bytes([0x03]) + bytes(3) + (0xFFFFFF).to_bytes(3, "big") + b"\x14" + bytes(4),
        ChunkWriter().encode(Message(MessageType.COMMAND_AMF0, 0, 0, b"\x02\x00\x07conn", 3)),
        ChunkWriter().encode(Message(MessageType.COMMAND_AMF0, 0, 0, b"\x11\x22\x33", 3)),
        ChunkWriter().encode(Message(MessageType.COMMAND_AMF0, 0, 0, amf0.encode(1.0), 3)),
    ]
    for junk in after:
        bad = await Client.open(server.port)
        await bad.handshake()
        bad.writer.write(junk)
        assert await bad.closed(), junk[:20]

    # A command before connect, and a publish flood of createStream.
    bad = await Client.open(server.port)
    await bad.handshake()
    bad.command("publish", 1.0, None, GOOD_KEY, "live", stream_id=1)
    assert await bad.closed()
    bad = await Client.open(server.port)
    await bad.handshake()
    await bad.connect()
    for txn in range(20):
        bad.command("createStream", float(txn + 2), None)
    assert await bad.closed()

    good.stream_media(range(3, 10))
    await eventually(lambda: len(harness.sinks[0].video) == 10)
    assert harness.control.ended == [] and server.registry.is_live(GOOD_COURSE)
    assert "handshake refused" in caplog.text and "protocol error" in caplog.text
    good.close()


async def test_before_publish_tiny_chunks_are_refused(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await harness.server()
    # The attack: handshake, Set Chunk Size 1, then audio nobody asked for.
    bad = await Client.open(server.port)
    await bad.handshake()
    bad.set_chunk_size(1)
    bad.media(MessageType.AUDIO, 0, aac_frame(0))
    assert await bad.closed()
    assert "chunk size 1 is below the minimum 128" in caplog.text
    # 128, what GStreamer's rtmp2sink may keep, is fine; once publishing anything legal is.
    client = await Client.open(server.port)
    await client.handshake()
    client.set_chunk_size(128)
    client.command("connect", 1.0, {"app": "live"})
    assert (await client.next_command())[0] == "_result"
    stream_id = await client.create_stream(GOOD_KEY)
    assert (await client.publish(GOOD_KEY, int(stream_id)))["code"] == "NetStream.Publish.Start"
    client.set_chunk_size(1)
    client.stream_media(range(0, 3))
    await eventually(lambda: len(harness.sinks[0].audio) == 3)
    assert harness.sinks[0].audio[2] == (2 * 23, aac_frame(2))
    client.close()


async def test_before_publish_bytes_and_messages_are_capped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await harness.server()
    good = await publisher(server.port)
    # Ignored audio at a normal chunk size, no connect: cut off after 256 KiB.
    streaming = await Client.open(server.port)
    await streaming.handshake()
    streaming.set_chunk_size(4096)
    for n in range(200):
        streaming.media(MessageType.AUDIO, n, bytes([0xAF, 0x01]) + bytes(4000))
    assert await streaming.closed()
    assert f"bytes without publishing (at most {256 * 1024})" in caplog.text
    # Many small messages: cut off after 100.
    chatty = await Client.open(server.port)
    await chatty.handshake()
    for n in range(101):
        chatty.send(messages.window_ack_size(1_000_000 + n))
    assert await chatty.closed()
    assert "sent more than 100 messages without publishing" in caplog.text
    # The publisher already live is not concerned: its media is not counted.
    good.stream_media(range(0, 150))
    await eventually(lambda: len(harness.sinks[0].video) == 150)
    assert server.registry.is_live(GOOD_COURSE)
    good.close()


async def test_a_large_read_is_parsed_with_yields_to_the_loop(harness: Harness) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    # Count the event loop's turns; note the turn each audio message is delivered in.
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    sink = harness.sinks[0]
    seen_at: list[int] = []
    deliver = sink.on_audio

    def on_audio(ts: int, payload: bytes) -> None:
        seen_at.append(turns)
        deliver(ts, payload)

    sink.on_audio = on_audio  # type: ignore[method-assign]
    # An authorised publisher at chunk size 1: 300 messages of ~200 one-byte chunks each,
    # written at once, so the server's reads are as large as they get (64 KiB).
    client.set_chunk_size(1)
    for n in range(300):
        client.media(MessageType.AUDIO, n, aac_frame(n))
    await client.writer.drain()
    await eventually(lambda: len(sink.audio) == 300, within=20)
    task.cancel()
    per_turn = max(seen_at.count(turn) for turn in set(seen_at))
    # 1024 chunks parsed, then a yield: 5 or 6 of these messages at a time (12 leaves
    # room for two slices in one turn), not the ~300 of a 64 KiB read parsed in one go,
    # which held the loop ~30 ms.
    assert per_turn <= 12, per_turn
    client.close()


async def test_strangers_time_out_but_a_key_check_in_progress_is_never_cut(
    harness: Harness,
) -> None:
    server = await harness.server(timeout=5, auth_timeout=0.5)
    harness.control.gate = asyncio.Event()
    teacher = await Client.open(server.port)
    await teacher.handshake()
    await teacher.connect()
    stream_id = await teacher.create_stream(GOOD_KEY)
    teacher.command("publish", 5.0, None, GOOD_KEY, "live", stream_id=int(stream_id), csid=4)
    await eventually(lambda: len(harness.control.asked) == 1)
    # Strangers arrive while the key is checked: handshaken or not, idle ones go.
    silent = await Client.open(server.port, "127.0.0.2")
    idle = await Client.open(server.port, "127.0.0.2")
    await idle.handshake()
    assert await silent.closed(within=3) and await idle.closed(within=3)
    # The key check outlived the auth timeout; the teacher still goes live.
    harness.control.gate.set()
    reply = await teacher.next_command()
    assert isinstance(reply[3], dict) and reply[3]["code"] == "NetStream.Publish.Start"
    teacher.stream_media(range(0, 3))
    await eventually(lambda: len(harness.sinks[0].video) == 3)
    assert server.connection_count == 1
    teacher.close()


async def test_handshake_must_finish_within_the_timeout(harness: Harness) -> None:
    server = await harness.server(timeout=0.5)
    silent = await Client.open(server.port)
    partial = await Client.open(server.port)
    partial.writer.write(client_c0c1(False)[:700])  # half of C0+C1, then nothing
    started = time.monotonic()
    assert await silent.closed(within=3) and await partial.closed(within=3)
    assert 0.4 < time.monotonic() - started < 2.0
    await eventually(lambda: server.connection_count == 0)


async def test_idle_connections_and_idle_publishers_are_dropped(harness: Harness) -> None:
    server = await harness.server(timeout=0.5)
    # Handshake done, then silence: no publish within the timeout.
    idle = await Client.open(server.port)
    await idle.handshake()
    assert await idle.closed(within=3)
    # A publisher that stops sending.
    quiet = await publisher(server.port)
    started = time.monotonic()
    assert await quiet.closed(within=3)
    assert time.monotonic() - started < 2.0
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])
    assert harness.sinks[0].closed


async def test_many_idle_connections_then_a_publish_still_works(harness: Harness) -> None:
    server = await harness.server(max_connections=1000, max_connections_per_ip=20)
    # 500 idle sockets from 25 addresses, 20 each: within both caps.
    idle = await asyncio.gather(*(
        Client.open(server.port, f"127.0.0.{2 + n % 25}") for n in range(500)))
    await eventually(lambda: server.connection_count == 500)
    good = await publisher(server.port)
    good.stream_media(range(0, 3))
    await eventually(lambda: len(harness.sinks[0].video) == 3)
    for client in idle:
        client.close()
    await eventually(lambda: server.connection_count == 1)
    good.close()


async def test_at_the_caps_newcomers_are_refused_and_nobody_is_evicted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    server = await harness.server(max_connections=6, max_connections_per_ip=2)
    # Two strangers from one address fill its share: a third is refused at once.
    first = [await Client.open(server.port) for _ in range(2)]
    await eventually(lambda: server.connection_count == 2)
    third = await Client.open(server.port)
    assert await third.closed(within=2)
    assert "rtmp_max_connections_per_ip" in caplog.text
    # Publishers leave the per-address share: one address may carry several classes.
    good = await publisher(server.port, source="127.0.0.2")
    other = await publisher(server.port, OTHER_KEY, source="127.0.0.2")
    mid_handshake = await Client.open(server.port, "127.0.0.2")
    mid_handshake.writer.write(client_c0c1(False)[:700])
    await eventually(lambda: server.connection_count == 5)
    harness.control.keys["sk_more"] = 30
    idle = await Client.open(server.port, "127.0.0.3")
    await eventually(lambda: server.connection_count == 6)
    # Full: a newcomer from anywhere is refused, and nobody already here is pushed out.
    late = await Client.open(server.port, "127.0.0.4")
    assert await late.closed(within=2)
    for client in [*first, good, other, mid_handshake, idle]:
        assert not await client.closed(within=0.1)
    assert server.connection_count == 6 and len(server.registry) == 2
    # The half-done handshake still completes, and room made is room taken.
    mid_handshake.writer.write(client_c0c1(False)[700:])
    idle.close()
    await eventually(lambda: server.connection_count == 5)
    late = await publisher(server.port, "sk_more", source="127.0.0.4")
    assert len(server.registry) == 3
    for client in [*first, good, other, mid_handshake, late]:
        client.close()


async def test_server_close_ends_live_streams(harness: Harness) -> None:
    server = await harness.server()
    client = await publisher(server.port)
    client.stream_media(range(0, 3))
    await eventually(lambda: len(harness.sinks[0].video) == 3)
    await server.close()
    assert harness.control.ended == [GOOD_COURSE]
    assert harness.sinks[0].closed
    assert server.connection_count == 0 and len(server.registry) == 0
    assert await client.closed()


async def test_a_failing_sink_ends_only_its_stream(harness: Harness) -> None:
    def exploding(course_id: int, session_id: int) -> RecordingSink:
        sink = harness.sink_factory(course_id, session_id)
        if course_id == OTHER_COURSE:
            def boom(ts: int, payload: bytes) -> None:
                raise OSError("disk full")
            sink.on_video = boom  # type: ignore[method-assign]
        return sink

    server = RtmpServer(Publishing(harness.control, SinksOnly(exploding)), port=0, timeout=5)
    await server.start()
    harness.servers.append(server)
    good = await publisher(server.port)
    failing = await publisher(server.port, OTHER_KEY)
    failing.stream_media(range(0, 2))
    assert await failing.closed()
    good.stream_media(range(0, 4))
    await eventually(lambda: len(harness.sinks[0].video) == 4)
    await eventually(lambda: harness.control.ended == [OTHER_COURSE])
    good.close()


async def test_unpublish_then_publish_again_on_one_connection(harness: Harness) -> None:
    server = await harness.server(timeout=0.8)
    client = await publisher(server.port)
    client.stream_media(range(3))
    # Outlive the connect-time publish window while publishing, then stop.
    for n in range(3, 8):
        await asyncio.sleep(0.25)
        client.stream_media(range(n, n + 1))
    await client.writer.drain()
    client.command("FCUnpublish", 6.0, None, GOOD_KEY)
    while True:
        reply = await client.next_command()
        if reply[0] == "onStatus":
            break
    assert isinstance(reply[3], dict) and reply[3]["code"] == "NetStream.Unpublish.Success"
    await eventually(lambda: harness.control.ended == [GOOD_COURSE])
    # The client is given a fresh window to publish again, not dropped at once.
    assert not await client.closed(within=0.3)
    info = await client.publish(GOOD_KEY)
    assert info["code"] == "NetStream.Publish.Start", info
    assert len(harness.sinks) == 2
