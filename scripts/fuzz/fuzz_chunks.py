"""Fuzz target: the RTMP chunk stream and the protocol-control messages it carries
(mediaserver/rtmp/chunks.py, mediaserver/rtmp/messages.py).

Bytes after the handshake go through `ChunkReader.feed` in socket-sized reads, and each
message through the parser the session uses for its type. Allowed errors: `ChunkError`
and `MessageError`. Every message must respect the reader's limits.
"""

from __future__ import annotations

from fuzz_pieces import pieces
from mediaserver.rtmp import messages
from mediaserver.rtmp.chunks import ChunkError, ChunkReader, Message
from mediaserver.rtmp.messages import MessageError, MessageType

_U32 = 0xFFFFFFFF


def _dispatch(message: Message, acks: messages.Acknowledger) -> None:
    assert 0 <= message.timestamp <= _U32 and 0 <= message.stream_id <= _U32
    kind = message.type_id
    if kind == MessageType.AGGREGATE:
        for part in messages.split_aggregate(message):
            assert part.type_id != MessageType.AGGREGATE
            _dispatch(part, acks)
    elif kind == MessageType.WINDOW_ACK_SIZE:
        acks.set_window(messages.parse_u32(message.payload))
    elif kind == MessageType.USER_CONTROL:
        event, data = messages.parse_user_control(message.payload)
        if event == messages.UserControlEvent.PING_REQUEST and len(data) >= 4:
            messages.ping_response(int.from_bytes(data[:4], "big"))
    elif kind == MessageType.SET_PEER_BANDWIDTH:
        messages.parse_set_peer_bandwidth(message.payload)
    elif kind == MessageType.ACKNOWLEDGEMENT:
        messages.parse_u32(message.payload)


def check(data: bytes) -> None:
    # Small limits, so that inputs of a few KiB can reach every one of them.
    reader = ChunkReader(max_message_size=4096, max_chunk_streams=8, max_pending_bytes=8192)
    acks = messages.Acknowledger()
    try:
        for piece in pieces(data):
            for message in reader.feed(piece):
                assert len(message.payload) <= reader.max_message_size
                assert 1 <= reader.chunk_size <= reader.max_chunk_size
                _dispatch(message, acks)
            acks.on_received(reader.bytes_received)
    except (ChunkError, MessageError):
        return
    assert reader.bytes_received == len(data)
