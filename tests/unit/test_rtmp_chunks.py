"""Unit tests for the RTMP chunk stream layer (mediaserver.rtmp.chunks)."""

from __future__ import annotations

import tracemalloc

import pytest

from mediaserver.rtmp.chunks import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    ChunkError,
    ChunkReader,
    ChunkWriter,
    Message,
)

AUDIO, VIDEO, SET_CHUNK_SIZE, ABORT = 8, 9, 1, 2


# Hand-built chunk pieces, so the reader is tested against bytes the writer never makes.
def basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1, (csid - 64) % 256, (csid - 64) // 256])


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def fmt0(csid: int, ts: int, length: int, type_id: int, stream_id: int) -> bytes:
    field = min(ts, 0xFFFFFF)
    ext = u32(ts) if ts >= 0xFFFFFF else b""
    return (
        basic(0, csid) + u24(field) + u24(length) + bytes([type_id])
        + stream_id.to_bytes(4, "little") + ext
    )


def fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    ext = u32(delta) if delta >= 0xFFFFFF else b""
    return basic(1, csid) + u24(min(delta, 0xFFFFFF)) + u24(length) + bytes([type_id]) + ext


def fmt2(csid: int, delta: int) -> bytes:
    ext = u32(delta) if delta >= 0xFFFFFF else b""
    return basic(2, csid) + u24(min(delta, 0xFFFFFF)) + ext


def payload_of(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


def feed_bytewise(reader: ChunkReader, data: bytes) -> list[Message]:
    out: list[Message] = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    return out


# --- writer -> reader round trips -------------------------------------------------


@pytest.mark.parametrize("chunk_size", [128, 4096])
@pytest.mark.parametrize(
    "length", [0, 1, 127, 128, 129, 255, 256, 257, 1000, 4095, 4096, 4097, 8192, 70_003]
)
def test_round_trip_sizes(chunk_size: int, length: int) -> None:
    writer = ChunkWriter(chunk_size)
    reader = ChunkReader()
    reader.set_chunk_size(chunk_size)
    msg = Message(VIDEO, 1, 123_456, payload_of(length), 6)
    assert reader.feed(writer.encode(msg)) == [msg]


@pytest.mark.parametrize("timestamp", [0, 1, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0xFFFFFFFF])
@pytest.mark.parametrize("length", [10, 300])
def test_round_trip_timestamps(timestamp: int, length: int) -> None:
    writer = ChunkWriter()
    reader = ChunkReader()
    msg = Message(AUDIO, 1, timestamp, payload_of(length), 4)
    assert reader.feed(writer.encode(msg)) == [msg]


def test_round_trip_sequence_byte_at_a_time() -> None:
    writer = ChunkWriter(128)
    messages = [
        Message(20, 0, 0, payload_of(200), 3),
        Message(AUDIO, 1, 0x1000000, payload_of(300, 1), 4),
        Message(VIDEO, 1, 0x1000021, payload_of(129, 2), 6),
        Message(AUDIO, 1, 5, b"", 4),
    ]
    data = b"".join(writer.encode(m) for m in messages)
    assert feed_bytewise(ChunkReader(), data) == messages
    assert ChunkReader().feed(data) == messages


# --- basic headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("csid", "header"),
    [
        (2, b"\x02"),
        (63, b"\x3f"),
        (64, b"\x00\x00"),
        (319, b"\x00\xff"),
        (320, b"\x01\x00\x01"),
        (65599, b"\x01\xff\xff"),
    ],
)
def test_basic_header_forms(csid: int, header: bytes) -> None:
    msg = Message(VIDEO, 1, 7, payload_of(200), csid)
    data = ChunkWriter().encode(msg)
    assert data.startswith(header)
    # The type-3 continuation uses the same form with fmt 3.
    cont = bytes([header[0] | 0xC0]) + header[1:]
    first_len = len(header) + 11 + 128
    assert data[first_len : first_len + len(cont)] == cont
    assert ChunkReader().feed(data) == [msg]
    assert feed_bytewise(ChunkReader(), data) == [msg]


def test_writer_rejects_bad_csid() -> None:
    writer = ChunkWriter()
    for csid in (0, 1, 65600):
        with pytest.raises(ValueError):
            writer.encode(Message(AUDIO, 1, 0, b"x", csid))


# --- header types 1/2/3 and timestamp deltas ----------------------------------------


def test_header_types_with_deltas() -> None:
    data = (
        fmt0(4, 1000, 3, AUDIO, 1) + b"abc"
        + fmt2(4, 20) + b"def"  # same length/type, delta 20
        + basic(3, 4) + b"ghi"  # new message, same delta again
        + fmt1(4, 33, 5, VIDEO) + b"jklmn"  # new length/type, delta 33
        + basic(3, 4) + b"opqrs"
    )
    expected = [
        Message(AUDIO, 1, 1000, b"abc", 4),
        Message(AUDIO, 1, 1020, b"def", 4),
        Message(AUDIO, 1, 1040, b"ghi", 4),
        Message(VIDEO, 1, 1073, b"jklmn", 4),
        Message(VIDEO, 1, 1106, b"opqrs", 4),
    ]
    assert ChunkReader().feed(data) == expected
    assert feed_bytewise(ChunkReader(), data) == expected


def test_type3_after_type0_reuses_type0_timestamp_as_delta() -> None:
    # Spec §5.3.1.2.4; FFmpeg emits exactly this for a stream starting at 40 ms.
    data = fmt0(6, 40, 2, VIDEO, 1) + b"v1" + basic(3, 6) + b"v2"
    assert [m.timestamp for m in ChunkReader().feed(data)] == [40, 80]


def test_type1_keeps_stream_id_and_multichunk_message() -> None:
    body = payload_of(300)
    data = (
        fmt0(6, 0, 1, VIDEO, 5) + b"k"
        + fmt1(6, 40, 300, VIDEO) + body[:128]
        + basic(3, 6) + body[128:256]
        + basic(3, 6) + body[256:]
    )
    msgs = ChunkReader().feed(data)
    assert msgs[1] == Message(VIDEO, 5, 40, body, 6)


def test_timestamp_wraps_at_32_bits() -> None:
    data = fmt0(4, 0xFFFFFFF0, 1, AUDIO, 1) + b"a" + fmt2(4, 0x20) + b"b"
    assert [m.timestamp for m in ChunkReader().feed(data)] == [0xFFFFFFF0, 0x10]


# --- interleaving ---------------------------------------------------------------------


def test_audio_and_video_interleaved_chunk_by_chunk() -> None:
    video = payload_of(300, 1)
    audio = payload_of(200, 2)
    data = (
        fmt0(6, 100, 300, VIDEO, 1) + video[:128]
        + fmt0(4, 101, 200, AUDIO, 1) + audio[:128]
        + basic(3, 6) + video[128:256]
        + basic(3, 4) + audio[128:]
        + basic(3, 6) + video[256:]
    )
    expected = [Message(AUDIO, 1, 101, audio, 4), Message(VIDEO, 1, 100, video, 6)]
    assert ChunkReader().feed(data) == expected
    assert feed_bytewise(ChunkReader(), data) == expected


def test_interleaving_with_many_csids_from_the_writer() -> None:
    writer = ChunkWriter(128)
    csids = [3, 64, 319, 320, 65599]
    msgs = [Message(VIDEO, 1, i * 10, payload_of(300 + i, i), c) for i, c in enumerate(csids)]
    # Split each encoding into its chunks and deal them out round-robin.
    per_message: list[list[bytes]] = []
    for m in msgs:
        data = writer.encode(m)
        # Header sizes: first = basic + 11, continuation = basic (no extended timestamp).
        basic_len = len(basic(0, m.chunk_stream_id))
        chunks = [data[: basic_len + 11 + 128]]
        pos = basic_len + 11 + 128
        while pos < len(data):
            chunks.append(data[pos : pos + basic_len + 128])
            pos += basic_len + 128
        assert b"".join(chunks) == data
        per_message.append(chunks)
    stream = b"".join(
        chunks[i] for i in range(3) for chunks in per_message if i < len(chunks)
    )
    assert sorted(ChunkReader().feed(stream), key=lambda m: m.timestamp) == msgs


# --- extended timestamps ----------------------------------------------------------------


EXT_TS = 0x01020304


@pytest.mark.parametrize("repeat", [True, False])
def test_extended_timestamp_on_continuations(repeat: bool) -> None:
    body = payload_of(300)
    rep = u32(EXT_TS) if repeat else b""
    data = (
        fmt0(6, EXT_TS, 300, VIDEO, 1) + body[:128]
        + basic(3, 6) + rep + body[128:256]
        + basic(3, 6) + rep + body[256:]
    )
    expected = [Message(VIDEO, 1, EXT_TS, body, 6)]
    assert ChunkReader().feed(data) == expected
    assert feed_bytewise(ChunkReader(), data) == expected


@pytest.mark.parametrize("repeat", [True, False])
def test_extended_delta_on_type3_new_message(repeat: bool) -> None:
    delta = 0x1000000
    rep = u32(delta) if repeat else b""
    data = (
        fmt0(4, 5, 2, AUDIO, 1) + b"a0"
        + fmt2(4, delta) + b"a1"
        + basic(3, 4) + rep + b"a2"
        + fmt2(4, 7) + b"a3"  # back to a plain delta: no more extended fields
        + basic(3, 4) + b"a4"
    )
    got = ChunkReader().feed(data)
    assert [m.timestamp for m in got] == [5, 5 + delta, 5 + 2 * delta, 12 + 2 * delta,
                                          19 + 2 * delta]
    assert [m.payload for m in got] == [b"a0", b"a1", b"a2", b"a3", b"a4"]


def test_non_repeated_extended_timestamp_decided_on_partial_mismatch() -> None:
    # Continuation payload starts with 01 02 (a prefix of the extended value) then
    # differs: the reader must wait for the third byte, then take it all as payload.
    body = payload_of(128) + b"\x01\x02\xff\x00"
    head = fmt0(6, EXT_TS, len(body), VIDEO, 1) + body[:128] + basic(3, 6)
    reader = ChunkReader()
    assert reader.feed(head + b"\x01\x02") == []
    assert reader.feed(b"\xff\x00") == [Message(VIDEO, 1, EXT_TS, body, 6)]


def test_short_non_repeated_final_chunk_does_not_stall() -> None:
    # Two payload bytes that already differ from the extended value: no waiting.
    body = payload_of(128) + b"\x07\x07"
    data = fmt0(6, EXT_TS, len(body), VIDEO, 1) + body[:128] + basic(3, 6) + b"\x07\x07"
    assert ChunkReader().feed(data) == [Message(VIDEO, 1, EXT_TS, body, 6)]


def test_writer_repeats_extended_timestamp_on_type3() -> None:
    msg = Message(VIDEO, 1, EXT_TS, payload_of(130), 6)
    data = ChunkWriter(128).encode(msg)
    assert data[:16] == fmt0(6, EXT_TS, 130, VIDEO, 1)
    assert data[16 + 128 :] == b"\xc6" + u32(EXT_TS) + msg.payload[128:]


# --- exact writer bytes ---------------------------------------------------------------


def test_writer_exact_bytes() -> None:
    msg = Message(20, 0, 0x010203, payload_of(130), 3)
    data = ChunkWriter().encode(msg)
    assert data == (
        b"\x03" + b"\x01\x02\x03" + b"\x00\x00\x82" + b"\x14" + b"\x00\x00\x00\x00"
        + msg.payload[:128] + b"\xc3" + msg.payload[128:]
    )
    msg = Message(AUDIO, 0x04030201, 0, b"", 4)
    assert ChunkWriter().encode(msg) == b"\x04" + bytes(6) + b"\x08\x01\x02\x03\x04"


def test_writer_validation() -> None:
    writer = ChunkWriter()
    with pytest.raises(ValueError):
        writer.encode(Message(AUDIO, 1, -1, b"", 4))
    with pytest.raises(ValueError):
        writer.encode(Message(AUDIO, 1, 1 << 32, b"", 4))
    with pytest.raises(ValueError):
        writer.encode(Message(256, 1, 0, b"", 4))
    with pytest.raises(ValueError):
        writer.encode(Message(AUDIO, 1, 0, bytes(0x1000000), 4))
    for size in (0, MAX_CHUNK_SIZE + 1):
        with pytest.raises(ValueError):
            writer.set_chunk_size(size)
        with pytest.raises(ValueError):
            ChunkWriter(size)
    writer.set_chunk_size(4096)
    assert writer.chunk_size == 4096


# --- Set Chunk Size and Abort handled inside the reader --------------------------------


def test_set_chunk_size_applies_to_next_chunk_in_same_feed() -> None:
    body = payload_of(1000)
    data = (
        fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(4096)
        + fmt0(3, 0, 1000, 20, 0) + body  # one chunk at the new size
    )
    reader = ChunkReader()
    assert reader.chunk_size == DEFAULT_CHUNK_SIZE
    msgs = reader.feed(data)
    assert msgs == [
        Message(SET_CHUNK_SIZE, 0, 0, u32(4096), 2),
        Message(20, 0, 0, body, 3),
    ]
    assert reader.chunk_size == 4096


def test_set_chunk_size_between_chunks_of_another_message() -> None:
    body = payload_of(400)
    data = (
        fmt0(6, 0, 400, VIDEO, 1) + body[:128]
        + fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(1000)
        + basic(3, 6) + body[128:]  # the rest in one chunk at the new size
    )
    assert ChunkReader().feed(data)[1] == Message(VIDEO, 1, 0, body, 6)
    assert feed_bytewise(ChunkReader(), data)[1] == Message(VIDEO, 1, 0, body, 6)


@pytest.mark.parametrize("size", [0, MAX_CHUNK_SIZE + 1, 0x80000000])
def test_bad_set_chunk_size_message(size: int) -> None:
    reader = ChunkReader()
    with pytest.raises(ChunkError):
        reader.feed(fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(size))
    # A failed reader stays failed: the connection must be closed.
    with pytest.raises(ChunkError):
        reader.feed(b"")


def test_short_set_chunk_size_payload() -> None:
    with pytest.raises(ChunkError):
        ChunkReader().feed(fmt0(2, 0, 2, SET_CHUNK_SIZE, 0) + b"\x10\x00")


def test_set_chunk_size_method_limits() -> None:
    reader = ChunkReader(max_chunk_size=65536)
    reader.set_chunk_size(65536)
    for size in (0, 65537):
        with pytest.raises(ChunkError):
            reader.set_chunk_size(size)


def test_abort_drops_partial_message() -> None:
    body = payload_of(200)
    data = (
        fmt0(6, 0, 300, VIDEO, 1) + payload_of(128)
        + fmt0(2, 0, 4, ABORT, 0) + u32(6)
        + fmt1(6, 40, 200, VIDEO) + body[:128] + basic(3, 6) + body[128:]
    )
    msgs = ChunkReader().feed(data)
    assert msgs == [Message(ABORT, 0, 0, u32(6), 2), Message(VIDEO, 1, 40, body, 6)]


# --- hostile input ----------------------------------------------------------------------


def test_huge_declared_length_rejected_before_payload() -> None:
    reader = ChunkReader(max_message_size=1024)
    tracemalloc.start()
    try:
        with pytest.raises(ChunkError, match="exceeds"):
            reader.feed(fmt0(3, 0, 0xFFFFFF, VIDEO, 1))  # header only, no payload
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_default_max_message_size() -> None:
    with pytest.raises(ChunkError):
        ChunkReader().feed(fmt0(3, 0, 8 * 1024 * 1024 + 1, VIDEO, 1))


@pytest.mark.parametrize("fmt", [1, 2, 3])
def test_first_chunk_needs_full_header(fmt: int) -> None:
    with pytest.raises(ChunkError, match="starts with"):
        ChunkReader().feed(basic(fmt, 5) + bytes(20))


def test_new_header_inside_unfinished_message() -> None:
    data = fmt0(6, 0, 300, VIDEO, 1) + payload_of(128) + fmt0(6, 0, 1, VIDEO, 1) + b"x"
    with pytest.raises(ChunkError, match="unfinished"):
        ChunkReader().feed(data)


def test_too_many_chunk_streams() -> None:
    reader = ChunkReader(max_chunk_streams=4)
    for csid in range(3, 7):
        reader.feed(fmt0(csid, 0, 1, AUDIO, 1) + b"a")
    with pytest.raises(ChunkError, match="chunk streams"):
        reader.feed(fmt0(7, 0, 1, AUDIO, 1) + b"a")


def test_pending_bytes_limit() -> None:
    reader = ChunkReader(max_pending_bytes=1000)
    reader.feed(fmt0(4, 0, 600, VIDEO, 1) + payload_of(128))
    with pytest.raises(ChunkError, match="partially assembled"):
        reader.feed(fmt0(5, 0, 600, VIDEO, 1))


def test_pending_bytes_released_on_completion() -> None:
    reader = ChunkReader(max_pending_bytes=1000)
    for i in range(5):
        body = payload_of(600, i)
        data = fmt0(4, i, 600, VIDEO, 1) + b"".join(
            (basic(3, 4) if off else b"") + body[off : off + 128] for off in range(0, 600, 128)
        )
        assert reader.feed(data) == [Message(VIDEO, 1, i, body, 4)]


def test_truncated_input_waits_at_every_cut() -> None:
    writer = ChunkWriter(128)
    msgs = [
        Message(AUDIO, 1, 0x1000000, payload_of(300), 4),
        Message(VIDEO, 1, 3, payload_of(10), 320),
    ]
    data = fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(128) + b"".join(writer.encode(m) for m in msgs)
    for cut in range(len(data)):
        reader = ChunkReader()
        first = reader.feed(data[:cut])  # must not raise
        rest = reader.feed(data[cut:])
        assert [m for m in first + rest if m.type_id != SET_CHUNK_SIZE] == msgs


def test_bytes_received_counts_everything_fed() -> None:
    reader = ChunkReader()
    reader.feed(b"\x04\x00")
    reader.feed(fmt0(4, 0, 1, AUDIO, 1)[2:] + b"a" + b"\x05")
    assert reader.bytes_received == 2 + 10 + 1 + 1


# --- bounded work: minimum chunk size, chunks parsed per feed ----------------------------


def test_min_chunk_size_refuses_tiny_chunks() -> None:
    reader = ChunkReader()
    reader.min_chunk_size = 128
    reader.feed(fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(128))  # the spec's default: fine
    assert reader.chunk_size == 128
    with pytest.raises(ChunkError, match="chunk size 1 is below the minimum 128"):
        reader.feed(fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(1))
    # Lowered (once a publish is authorised), any legal size goes.
    reader = ChunkReader()
    reader.min_chunk_size = 128
    reader.min_chunk_size = 1
    reader.feed(fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(1))
    assert reader.chunk_size == 1


def test_max_chunks_bounds_the_work_of_one_feed() -> None:
    writer = ChunkWriter(1)
    msgs = [Message(AUDIO, 1, n, payload_of(50), 4) for n in range(40)]
    data = fmt0(2, 0, 4, SET_CHUNK_SIZE, 0) + u32(1) + b"".join(writer.encode(m) for m in msgs)
    reader = ChunkReader()
    got = reader.feed(data, max_chunks=100)
    rounds = 1
    # 1 Set Chunk Size + 40 messages of 50 one-byte chunks: 2001 chunks, 100 a round.
    assert reader.more_buffered and len(got) == 2  # Set Chunk Size, then one audio
    while reader.more_buffered:
        batch = reader.feed(b"", max_chunks=100)
        assert len(batch) <= 2
        got += batch
        rounds += 1
    assert rounds == 21
    assert got[1:] == msgs
    # Without a budget, the same bytes in one go; a budget never splits what it need not.
    assert ChunkReader().feed(data)[1:] == msgs
    reader = ChunkReader()
    assert reader.feed(data, max_chunks=5000)[1:] == msgs and not reader.more_buffered
    with pytest.raises(ValueError):
        ChunkReader().feed(b"", max_chunks=0)
