"""RTMP message type ids and protocol-control messages (RTMP 1.0 spec §5.4, §6.2, §7.1).

Builders return `Message`s ready for a `ChunkWriter`; parsers take a payload and raise
`MessageError` on malformed input. `Acknowledger` decides when the server owes the peer
an Acknowledgement, and `split_aggregate` unpacks Aggregate messages. Sans-I/O.
"""

from __future__ import annotations

from enum import IntEnum

from mediaserver.rtmp.chunks import Message

# Protocol control messages travel on chunk stream 2, message stream 0 (spec §5.4).
PROTOCOL_CONTROL_CSID = 2
PROTOCOL_CONTROL_STREAM_ID = 0

_U32 = 0xFFFFFFFF
_AGGREGATE_TAG_HEADER = 11  # type(1) size(3) timestamp(3) timestamp_ext(1) stream id(3)
_BACK_POINTER = 4
DEFAULT_MAX_AGGREGATE_MESSAGES = 4096


class MessageType(IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class LimitType(IntEnum):
    """Set Peer Bandwidth limit types (spec §5.4.5)."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


class MessageError(ValueError):
    """A protocol-control or aggregate payload is malformed."""


def _u32(value: int, what: str) -> bytes:
    if not 0 <= value <= _U32:
        raise ValueError(f"{what} {value} is not a 32-bit value")
    return value.to_bytes(4, "big")


def _control(type_id: MessageType, payload: bytes) -> Message:
    return Message(int(type_id), PROTOCOL_CONTROL_STREAM_ID, 0, payload, PROTOCOL_CONTROL_CSID)


def set_chunk_size(size: int) -> Message:
    """Set Chunk Size; the spec allows 1..0x7FFFFFFF (the top bit must be zero)."""
    if not 1 <= size <= 0x7FFFFFFF:
        raise ValueError(f"chunk size {size} outside 1..0x7FFFFFFF")
    return _control(MessageType.SET_CHUNK_SIZE, size.to_bytes(4, "big"))


def abort(chunk_stream_id: int) -> Message:
    return _control(MessageType.ABORT, _u32(chunk_stream_id, "chunk stream id"))


def acknowledgement(sequence: int) -> Message:
    """Acknowledgement of `sequence` bytes received; wraps at 2**32 like the field."""
    if sequence < 0:
        raise ValueError(f"sequence number {sequence} is negative")
    return _control(MessageType.ACKNOWLEDGEMENT, (sequence & _U32).to_bytes(4, "big"))


def window_ack_size(size: int) -> Message:
    return _control(MessageType.WINDOW_ACK_SIZE, _u32(size, "window size"))


def set_peer_bandwidth(size: int, limit_type: LimitType | int) -> Message:
    if limit_type not in (LimitType.HARD, LimitType.SOFT, LimitType.DYNAMIC):
        raise ValueError(f"unknown limit type {limit_type}")
    payload = _u32(size, "window size") + bytes((int(limit_type),))
    return _control(MessageType.SET_PEER_BANDWIDTH, payload)


def user_control(event: UserControlEvent | int, data: bytes) -> Message:
    if not 0 <= event <= 0xFFFF:
        raise ValueError(f"user control event {event} is not a 16-bit value")
    return _control(MessageType.USER_CONTROL, int(event).to_bytes(2, "big") + data)


def stream_begin(stream_id: int) -> Message:
    return user_control(UserControlEvent.STREAM_BEGIN, _u32(stream_id, "stream id"))


def stream_eof(stream_id: int) -> Message:
    return user_control(UserControlEvent.STREAM_EOF, _u32(stream_id, "stream id"))


def ping_request(timestamp: int) -> Message:
    return user_control(UserControlEvent.PING_REQUEST, (timestamp & _U32).to_bytes(4, "big"))


def ping_response(timestamp: int) -> Message:
    """Answer to a Ping Request: echoes the timestamp the peer sent."""
    return user_control(UserControlEvent.PING_RESPONSE, (timestamp & _U32).to_bytes(4, "big"))


def parse_u32(payload: bytes) -> int:
    """The big-endian 32-bit value at the start of a control message payload."""
    if len(payload) < 4:
        raise MessageError(f"payload has {len(payload)} bytes, expected a 4-byte value")
    return int.from_bytes(payload[:4], "big")


def parse_set_peer_bandwidth(payload: bytes) -> tuple[int, int]:
    """(window size, limit type) from a Set Peer Bandwidth payload."""
    if len(payload) < 5:
        raise MessageError(f"Set Peer Bandwidth payload has {len(payload)} bytes, expected 5")
    return parse_u32(payload), payload[4]


def parse_user_control(payload: bytes) -> tuple[int, bytes]:
    """(event type, event data). Unknown event types are returned, not rejected:
    peers send vendor events (e.g. 31/32 buffer empty/ready) we simply ignore."""
    if len(payload) < 2:
        raise MessageError(f"User Control payload has {len(payload)} bytes, expected >= 2")
    return int.from_bytes(payload[:2], "big"), bytes(payload[2:])


class Acknowledger:
    """Tells when an Acknowledgement is owed to the peer (spec §5.4.3).

    The peer announces its window with Window Acknowledgement Size; each time another
    `window` bytes have arrived since the last acknowledgement we send one carrying the
    total received. After a burst spanning several windows we send a single ack, like
    nginx-rtmp: more would tell the peer nothing new. A window of 0 means none announced.
    """

    def __init__(self, window: int = 0) -> None:
        self._window = 0
        self._last_ack = 0
        self.set_window(window)

    @property
    def window(self) -> int:
        return self._window

    def set_window(self, window: int) -> None:
        """New window from the peer; it counts from the last acknowledgement sent."""
        if not 0 <= window <= _U32:
            raise ValueError(f"window {window} is not a 32-bit value")
        self._window = window

    def on_received(self, total_bytes: int) -> Message | None:
        """`total_bytes` received so far; returns the Acknowledgement to send, if due."""
        if total_bytes < self._last_ack:
            raise ValueError(f"total bytes went backwards: {total_bytes} < {self._last_ack}")
        if self._window == 0 or total_bytes - self._last_ack < self._window:
            return None
        self._last_ack = total_bytes
        return acknowledgement(total_bytes)


def split_aggregate(
    message: Message, *, max_messages: int = DEFAULT_MAX_AGGREGATE_MESSAGES
) -> list[Message]:
    """Unpack an Aggregate message into its sub-messages.

    The payload is FLV-tag-like records: type(1) size(3) timestamp(3) timestamp_ext(1)
    stream id(3) payload(size) back pointer(4). Sub-message timestamps are rebased so
    the first one lands on the aggregate's own timestamp (spec §7.1.6); stream id and
    chunk stream id are the aggregate's. The back pointer must be present, but its value
    is not checked: sizes already delimit the records and some muxers write it wrong.
    """
    if message.type_id != MessageType.AGGREGATE:
        raise MessageError(f"message type {message.type_id} is not an aggregate")
    data = message.payload
    out: list[Message] = []
    base: int | None = None
    pos = 0
    while pos < len(data):
        if len(out) >= max_messages:
            raise MessageError(f"aggregate holds more than {max_messages} messages")
        if len(data) - pos < _AGGREGATE_TAG_HEADER:
            raise MessageError(f"truncated aggregate sub-message header at offset {pos}")
        type_id = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        sub_ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        if type_id == MessageType.AGGREGATE:
            raise MessageError("nested aggregate message")
        start = pos + _AGGREGATE_TAG_HEADER
        if len(data) - start < size + _BACK_POINTER:
            raise MessageError(
                f"aggregate sub-message at offset {pos} declares {size} bytes, "
                f"only {max(len(data) - start - _BACK_POINTER, 0)} follow"
            )
        if base is None:
            base = sub_ts
        timestamp = (message.timestamp + sub_ts - base) & _U32
        out.append(
            Message(
                type_id,
                message.stream_id,
                timestamp,
                bytes(data[start : start + size]),
                message.chunk_stream_id,
            )
        )
        pos = start + size + _BACK_POINTER
    return out
