"""Unit tests for RTMP protocol-control messages (mediaserver.rtmp.messages)."""

from __future__ import annotations

import pytest

from mediaserver.rtmp.chunks import ChunkReader, ChunkWriter, Message
from mediaserver.rtmp.messages import (
    Acknowledger,
    LimitType,
    MessageError,
    MessageType,
    UserControlEvent,
    abort,
    acknowledgement,
    parse_set_peer_bandwidth,
    parse_u32,
    parse_user_control,
    ping_request,
    ping_response,
    set_chunk_size,
    set_peer_bandwidth,
    split_aggregate,
    stream_begin,
    stream_eof,
    user_control,
    window_ack_size,
)


def control(type_id: int, payload: bytes) -> Message:
    return Message(type_id, 0, 0, payload, 2)


# --- enums ------------------------------------------------------------------------------


def test_enum_values() -> None:
    assert [int(t) for t in MessageType] == [1, 2, 3, 4, 5, 6, 8, 9, 15, 16, 17, 18, 19, 20, 22]
    assert [int(e) for e in UserControlEvent] == [0, 1, 2, 3, 4, 6, 7]
    assert UserControlEvent.PING_REQUEST.value == 6
    assert UserControlEvent.PING_RESPONSE.value == 7


# --- builders: exact bytes ---------------------------------------------------------------


def test_set_chunk_size_bytes() -> None:
    msg = set_chunk_size(4096)
    assert msg == control(1, b"\x00\x00\x10\x00")
    # Whole wire form: csid 2, fmt 0, ts 0, length 4, type 1, stream 0.
    assert ChunkWriter().encode(msg) == (
        b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x10\x00"
    )


@pytest.mark.parametrize("size", [0, 0x80000000])
def test_set_chunk_size_range(size: int) -> None:
    with pytest.raises(ValueError):
        set_chunk_size(size)


def test_window_ack_size_bytes() -> None:
    assert window_ack_size(2_500_000) == control(5, b"\x00\x26\x25\xa0")
    with pytest.raises(ValueError):
        window_ack_size(1 << 32)


def test_set_peer_bandwidth_bytes() -> None:
    assert set_peer_bandwidth(2_500_000, LimitType.DYNAMIC) == control(
        6, b"\x00\x26\x25\xa0\x02"
    )
    assert set_peer_bandwidth(1, 0).payload == b"\x00\x00\x00\x01\x00"
    with pytest.raises(ValueError):
        set_peer_bandwidth(1, 3)


def test_acknowledgement_bytes_and_wrap() -> None:
    assert acknowledgement(0x01020304) == control(3, b"\x01\x02\x03\x04")
    assert acknowledgement((1 << 32) + 5).payload == b"\x00\x00\x00\x05"
    with pytest.raises(ValueError):
        acknowledgement(-1)


def test_abort_bytes() -> None:
    assert abort(6) == control(2, b"\x00\x00\x00\x06")


def test_user_control_builders() -> None:
    assert stream_begin(1) == control(4, b"\x00\x00\x00\x00\x00\x01")
    assert stream_eof(1) == control(4, b"\x00\x01\x00\x00\x00\x01")
    assert ping_request(0x0A0B0C0D) == control(4, b"\x00\x06\x0a\x0b\x0c\x0d")
    assert ping_response(0x0A0B0C0D) == control(4, b"\x00\x07\x0a\x0b\x0c\x0d")
    assert user_control(3, b"\x00\x00\x00\x01\x00\x00\x0b\xb8").payload == (
        b"\x00\x03\x00\x00\x00\x01\x00\x00\x0b\xb8"
    )
    with pytest.raises(ValueError):
        user_control(0x10000, b"")


def test_builders_round_trip_through_chunks() -> None:
    msgs = [set_chunk_size(4096), window_ack_size(5_000_000), stream_begin(1), ping_response(9)]
    writer = ChunkWriter()
    data = b"".join(writer.encode(m) for m in msgs)
    assert ChunkReader().feed(data) == msgs


# --- parsers ------------------------------------------------------------------------------


def test_parse_u32() -> None:
    assert parse_u32(b"\x00\x00\x10\x00") == 4096
    assert parse_u32(b"\xff\xff\xff\xff\x02") == 0xFFFFFFFF  # trailing bytes ignored
    for short in (b"", b"\x00", b"\x00\x00\x00"):
        with pytest.raises(MessageError, match="expected a 4-byte value"):
            parse_u32(short)


def test_parse_set_peer_bandwidth() -> None:
    assert parse_set_peer_bandwidth(b"\x00\x26\x25\xa0\x02") == (2_500_000, 2)
    with pytest.raises(MessageError):
        parse_set_peer_bandwidth(b"\x00\x26\x25\xa0")


def test_parse_user_control() -> None:
    assert parse_user_control(b"\x00\x06\x00\x00\x00\x2a") == (
        UserControlEvent.PING_REQUEST,
        b"\x00\x00\x00\x2a",
    )
    assert parse_user_control(b"\x00\x1f") == (31, b"")  # unknown events are passed on
    for short in (b"", b"\x00"):
        with pytest.raises(MessageError):
            parse_user_control(short)


# --- Acknowledger --------------------------------------------------------------------------


def test_acknowledger_disabled_without_window() -> None:
    ack = Acknowledger()
    assert ack.on_received(10**9) is None


def test_acknowledger_windows() -> None:
    ack = Acknowledger(1000)
    assert ack.on_received(999) is None
    assert ack.on_received(1000) == acknowledgement(1000)
    assert ack.on_received(1500) is None
    assert ack.on_received(1999) is None
    assert ack.on_received(2000) == acknowledgement(2000)
    # A burst over several windows is acknowledged once, with the total.
    assert ack.on_received(5500) == acknowledgement(5500)
    assert ack.on_received(6499) is None
    assert ack.on_received(6500) == acknowledgement(6500)


def test_acknowledger_window_change() -> None:
    ack = Acknowledger(1000)
    assert ack.on_received(1200) == acknowledgement(1200)
    ack.set_window(5000)  # counted from the last ack, at 1200
    assert ack.window == 5000
    assert ack.on_received(6199) is None
    assert ack.on_received(6200) == acknowledgement(6200)
    ack.set_window(100)  # smaller window: already overdue at the next call
    assert ack.on_received(6350) == acknowledgement(6350)
    ack.set_window(0)
    assert ack.on_received(10**6) is None


def test_acknowledger_starts_late_and_wraps_sequence() -> None:
    ack = Acknowledger()
    ack.set_window(2_500_000)
    total = (1 << 32) + 10
    msg = ack.on_received(total)
    assert msg is not None and parse_u32(msg.payload) == 10


def test_acknowledger_rejects_bad_input() -> None:
    ack = Acknowledger(10)
    ack.on_received(20)
    with pytest.raises(ValueError):
        ack.on_received(19)
    with pytest.raises(ValueError):
        ack.set_window(-1)


# --- aggregate messages ----------------------------------------------------------------------


def sub(type_id: int, ts: int, payload: bytes, back: int | None = None) -> bytes:
    header = (
        bytes([type_id]) + len(payload).to_bytes(3, "big")
        + (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24]) + b"\x00\x00\x00"
    )
    pointer = 11 + len(payload) if back is None else back
    return header + payload + pointer.to_bytes(4, "big")


def aggregate(payload: bytes, ts: int = 5000) -> Message:
    return Message(MessageType.AGGREGATE, 1, ts, payload, 6)


def test_split_aggregate_rebases_timestamps() -> None:
    data = sub(9, 0x01000010, b"video") + sub(8, 0x01000020, b"au") + sub(9, 0x01000030, b"")
    assert split_aggregate(aggregate(data)) == [
        Message(9, 1, 5000, b"video", 6),
        Message(8, 1, 5016, b"au", 6),
        Message(9, 1, 5032, b"", 6),
    ]


def test_split_aggregate_timestamp_wrap_and_lenient_back_pointer() -> None:
    data = sub(8, 100, b"a", back=0) + sub(8, 90, b"b")
    msgs = split_aggregate(aggregate(data, ts=5))
    assert [m.timestamp for m in msgs] == [5, 0xFFFFFFFB]


def test_split_aggregate_empty() -> None:
    assert split_aggregate(aggregate(b"")) == []


@pytest.mark.parametrize(
    "data",
    [
        sub(9, 0, b"abc")[:5],  # truncated header
        sub(9, 0, b"abc")[:-1],  # truncated back pointer
        sub(9, 0, b"abc")[:11] + b"ab",  # payload shorter than declared
        sub(9, 0, b"ok") + sub(22, 0, b"nested"),
    ],
)
def test_split_aggregate_malformed(data: bytes) -> None:
    with pytest.raises(MessageError):
        split_aggregate(aggregate(data))


def test_split_aggregate_limits_and_type() -> None:
    data = sub(8, 0, b"a") * 5
    assert len(split_aggregate(aggregate(data), max_messages=5)) == 5
    with pytest.raises(MessageError, match="more than 4"):
        split_aggregate(aggregate(data), max_messages=4)
    with pytest.raises(MessageError):
        split_aggregate(Message(9, 1, 0, data, 6))
