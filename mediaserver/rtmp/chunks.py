"""RTMP chunk stream layer (RTMP 1.0 spec §5.3), sans-I/O.

The session feeds every byte it receives after the handshake to a `ChunkReader` and gets
whole `Message`s back; it turns outgoing `Message`s into bytes with a `ChunkWriter` and
writes them itself. Nothing here touches a socket or a clock.

Decisions that are not spelled out by the spec, or where real peers disagree with it:

* Set Chunk Size and Abort are applied *inside* the reader, as soon as such a message
  is complete. The new chunk size must govern the very next chunk, which may already be
  sitting in the same buffer, so the session cannot do it in time. The messages are
  still returned so the session can log them; it must not call `set_chunk_size` again.
  They are honoured on any chunk stream and message stream id, not only csid 2 / msid 0,
  because ignoring a misplaced one would desynchronise the whole connection.

* Extended timestamps on type-3 chunks. librtmp (hence OBS) and FFmpeg repeat the
  4-byte extended timestamp on every type-3 chunk of a chunk stream whose last type
  0/1/2 header used one; some other encoders do not. MediaMTX, and nginx-rtmp with its
  default publish_time_fix, always read it, which breaks on the latter. We follow SRS
  instead: on such a type-3 chunk we peek at the next bytes and consume 4 of them as the
  repeated field only when they equal the stored extended value; otherwise they are
  payload. As soon as the bytes available differ from a prefix of the stored value we
  decide "not repeated" without waiting, so a short final chunk cannot stall the reader;
  we only wait while what we have is still a prefix match. The residual risk (a
  non-repeating peer whose chunk payload happens to start with those exact 4 bytes,
  only possible once timestamps pass 4.6 hours) is accepted.

* A type-3 chunk that starts a new message reuses the previous timestamp delta. After a
  type-0 header that delta is the type-0 timestamp itself (spec §5.3.1.2.4: "If a Type 3
  chunk follows a Type 0 chunk, then the timestamp delta for this Type 3 chunk is the
  same as the timestamp of the Type 0 chunk"). FFmpeg writes streams that rely on this.

* Hostile input is bounded: chunk size (`max_chunk_size`, 16 MiB), declared message
  length (`max_message_size`, 8 MiB, checked on the header before any payload is
  buffered), distinct chunk streams (`max_chunk_streams`, 64) and the declared lengths
  of all partially assembled messages together (`max_pending_bytes`, 32 MiB). Breaking
  a limit, or a malformed stream, raises `ChunkError`; the reader is then unusable and
  the connection should be closed. `min_chunk_size` (1 unless the session raises it)
  refuses a Set Chunk Size below it: parsing costs per chunk, not per byte, so tiny
  chunks multiply the work of every byte.

* Parsing work per call is bounded too: `feed(data, max_chunks=N)` stops after N chunks
  and sets `more_buffered`; the caller yields to its event loop, then calls `feed(b"")`
  to go on. Without it one large read of 1-byte chunks holds the caller for tens of ms.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
DEFAULT_MAX_CHUNK_STREAMS = 64
DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024
MIN_CHUNK_STREAM_ID = 2
MAX_CHUNK_STREAM_ID = 64 + 255 + 255 * 256  # 65599, the largest 3-byte basic header

# The 3-byte timestamp value that announces a 4-byte extended timestamp.
_EXTENDED = 0xFFFFFF
_U32 = 0xFFFFFFFF
_MAX_MESSAGE_LENGTH = 0xFFFFFF  # message length is a 3-byte field

# Duplicated from messages.MessageType: messages.py imports this module, not vice versa.
_TYPE_SET_CHUNK_SIZE = 1
_TYPE_ABORT = 2


class ChunkError(ValueError):
    """The peer sent a malformed chunk stream or broke one of the reader's limits."""


@dataclass(frozen=True, slots=True)
class Message:
    """One RTMP message, reassembled from (or to be split into) chunks.

    `timestamp` is the absolute timestamp in milliseconds, 0..2**32-1 (it wraps).
    `chunk_stream_id` is the csid it arrived on, or the one to send it on.
    """

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    chunk_stream_id: int


@dataclass(slots=True)
class _ChunkStreamState:
    """What a chunk stream remembers between chunks (the "previous header")."""

    type_id: int
    stream_id: int
    length: int
    timestamp: int  # absolute timestamp of the current (or last) message
    delta: int  # reused by a type-3 chunk that starts a new message
    extended: int | None  # value of the last extended timestamp field, if any
    partial: bytearray | None = None  # payload so far of a message still in progress


def _check_chunk_size(size: int, limit: int) -> None:
    if not 1 <= size <= limit:
        raise ChunkError(f"chunk size {size} outside 1..{limit}")


class ChunkReader:
    """Incremental chunk stream parser: bytes in, complete messages out, in order."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_size: int = MAX_CHUNK_SIZE,
        max_chunk_streams: int = DEFAULT_MAX_CHUNK_STREAMS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_chunk_size = max_chunk_size
        self.max_chunk_streams = max_chunk_streams
        self.max_pending_bytes = max_pending_bytes
        self.min_chunk_size = 1
        # True when the last feed() stopped at its `max_chunks` with bytes left to parse.
        self.more_buffered = False
        # Counts only bytes given to feed(); a session that wants sequence numbers
        # including the handshake may add those bytes to this attribute itself.
        self.bytes_received = 0
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _ChunkStreamState] = {}
        self._pending = 0  # sum of declared lengths of partially assembled messages
        self._buf = bytearray()
        self._pos = 0
        self._failed = False

    @property
    def chunk_size(self) -> int:
        """Maximum chunk payload size currently expected from the peer."""
        return self._chunk_size

    def set_chunk_size(self, size: int) -> None:
        """Use `size` for subsequent chunks (done automatically on Set Chunk Size)."""
        _check_chunk_size(size, self.max_chunk_size)
        if size < self.min_chunk_size:
            raise ChunkError(f"chunk size {size} is below the minimum {self.min_chunk_size}")
        self._chunk_size = size

    def abort(self, chunk_stream_id: int) -> None:
        """Drop the partially received message on a chunk stream (done on Abort)."""
        state = self._streams.get(chunk_stream_id)
        if state is not None and state.partial is not None:
            self._pending -= state.length
            state.partial = None

    def feed(self, data: bytes, *, max_chunks: int | None = None) -> list[Message]:
        """Buffer `data` and return every message it completes, in arrival order.

        With `max_chunks`, parse at most that many chunks; `more_buffered` then tells
        whether to call `feed(b"")` again for the rest.
        """
        if max_chunks is not None and max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1, not {max_chunks}")
        if self._failed:
            raise ChunkError("chunk reader already failed; close the connection")
        self.bytes_received += len(data)
        self._buf += data
        messages: list[Message] = []
        budget = -1 if max_chunks is None else max_chunks
        self.more_buffered = False
        try:
            while budget != 0 and self._read_chunk(messages):
                budget -= 1
            self.more_buffered = budget == 0 and self._pos < len(self._buf)
        except ChunkError:
            self._failed = True
            raise
        finally:
            # Compact once per feed() rather than per chunk to keep parsing linear.
            del self._buf[: self._pos]
            self._pos = 0
        return messages

    def _read_chunk(self, out: list[Message]) -> bool:
        """Parse one chunk at the read position; False when more bytes are needed.

        Nothing is committed until the whole chunk is buffered, so an incomplete chunk
        is simply parsed again on the next feed().
        """
        buf = self._buf
        end = len(buf)
        pos = self._pos
        if pos >= end:
            return False

        first = buf[pos]
        fmt = first >> 6
        low = first & 0x3F
        if low == 0:
            if end - pos < 2:
                return False
            csid = 64 + buf[pos + 1]
            pos += 2
        elif low == 1:
            if end - pos < 3:
                return False
            csid = 64 + buf[pos + 1] + 256 * buf[pos + 2]
            pos += 3
        else:
            csid = low
            pos += 1

        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts with a fmt {fmt} header")
            if len(self._streams) >= self.max_chunk_streams:
                raise ChunkError(f"more than {self.max_chunk_streams} chunk streams")
        in_progress = state is not None and state.partial is not None
        if fmt != 3 and in_progress:
            raise ChunkError(f"chunk stream {csid}: fmt {fmt} header inside an unfinished message")

        # Message header. For fmt 1..3 the missing fields come from `state`.
        if fmt == 0:
            if end - pos < 11:
                return False
            ts_field = int.from_bytes(buf[pos : pos + 3], "big")
            length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
            type_id = buf[pos + 6]
            stream_id = int.from_bytes(buf[pos + 7 : pos + 11], "little")
            pos += 11
        else:
            assert state is not None  # fmt != 0 on an unknown stream was rejected above
            stream_id = state.stream_id
            if fmt == 1:
                if end - pos < 7:
                    return False
                ts_field = int.from_bytes(buf[pos : pos + 3], "big")
                length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
                type_id = buf[pos + 6]
                pos += 7
            else:
                length = state.length
                type_id = state.type_id
                ts_field = 0
                if fmt == 2:
                    if end - pos < 3:
                        return False
                    ts_field = int.from_bytes(buf[pos : pos + 3], "big")
                    pos += 3

        extended: int | None
        if fmt != 3:
            if ts_field == _EXTENDED:
                if end - pos < 4:
                    return False
                extended = int.from_bytes(buf[pos : pos + 4], "big")
                ts_value = extended
                pos += 4
            else:
                extended = None
                ts_value = ts_field
        else:
            assert state is not None
            extended = state.extended
            ts_value = state.delta
            if extended is not None:
                # Possibly repeated extended timestamp: see the module docstring.
                expected = extended.to_bytes(4, "big")
                seen = bytes(buf[pos : pos + 4])
                if seen == expected:
                    pos += 4
                elif seen != expected[: len(seen)]:
                    pass  # not repeated: these bytes are payload
                else:
                    return False  # still a prefix match; cannot tell yet

        if in_progress:
            assert state is not None and state.partial is not None
            remaining = state.length - len(state.partial)
        else:
            if length > self.max_message_size:
                raise ChunkError(
                    f"chunk stream {csid}: message length {length} exceeds {self.max_message_size}"
                )
            remaining = length
            if length > self._chunk_size and self._pending + length > self.max_pending_bytes:
                raise ChunkError(
                    f"partially assembled messages would exceed {self.max_pending_bytes} bytes"
                )

        size = min(self._chunk_size, remaining)
        if end - pos < size:
            return False
        data = buf[pos : pos + size]
        self._pos = pos + size

        # The whole chunk is here: commit it.
        if in_progress:
            assert state is not None and state.partial is not None
            state.partial += data
        else:
            if fmt == 0:
                timestamp = ts_value
            else:
                assert state is not None
                timestamp = (state.timestamp + ts_value) & _U32
            if state is None:
                state = _ChunkStreamState(type_id, stream_id, length, timestamp, 0, None)
                self._streams[csid] = state
            state.type_id = type_id
            state.stream_id = stream_id
            state.length = length
            state.timestamp = timestamp
            state.delta = ts_value
            state.extended = extended
            if size < length:
                state.partial = bytearray(data)
                self._pending += length
                return True
            state.partial = None
            self._complete(csid, state, bytes(data), out)
            return True

        if len(state.partial) == state.length:
            payload = bytes(state.partial)
            state.partial = None
            self._pending -= state.length
            self._complete(csid, state, payload, out)
        return True

    def _complete(
        self, csid: int, state: _ChunkStreamState, payload: bytes, out: list[Message]
    ) -> None:
        message = Message(state.type_id, state.stream_id, state.timestamp, payload, csid)
        if message.type_id == _TYPE_SET_CHUNK_SIZE:
            self.set_chunk_size(_control_u32(message, "Set Chunk Size"))
        elif message.type_id == _TYPE_ABORT:
            self.abort(_control_u32(message, "Abort"))
        out.append(message)


def _control_u32(message: Message, name: str) -> int:
    if len(message.payload) < 4:
        raise ChunkError(f"{name} payload has {len(message.payload)} bytes, needs 4")
    return int.from_bytes(message.payload[:4], "big")


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes((fmt << 6 | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes((fmt << 6 | 1, rest & 0xFF, rest >> 8))


class ChunkWriter:
    """Splits outgoing messages into chunks of the writer's chunk size.

    Every message starts with a type-0 header (always valid, and it spares us tracking
    per-csid state); continuations are type 3. When the timestamp needs the extended
    field it is repeated on every type-3 chunk, as librtmp/FFmpeg/Flash readers expect.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size, MAX_CHUNK_SIZE)
        self._chunk_size = chunk_size

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    def set_chunk_size(self, size: int) -> None:
        """Use `size` from the next encode() on.

        Send the Set Chunk Size message to the peer *before* calling this.
        """
        _check_chunk_size(size, MAX_CHUNK_SIZE)
        self._chunk_size = size

    def encode(self, message: Message) -> bytes:
        csid = message.chunk_stream_id
        if not MIN_CHUNK_STREAM_ID <= csid <= MAX_CHUNK_STREAM_ID:
            raise ValueError(f"chunk stream id {csid} outside 2..{MAX_CHUNK_STREAM_ID}")
        if not 0 <= message.timestamp <= _U32:
            raise ValueError(f"timestamp {message.timestamp} is not a 32-bit value")
        if not 0 <= message.stream_id <= _U32:
            raise ValueError(f"message stream id {message.stream_id} is not a 32-bit value")
        if not 0 <= message.type_id <= 0xFF:
            raise ValueError(f"message type id {message.type_id} is not a byte")
        length = len(message.payload)
        if length > _MAX_MESSAGE_LENGTH:
            raise ValueError(f"payload of {length} bytes does not fit a 3-byte length")

        timestamp = message.timestamp
        ext = timestamp.to_bytes(4, "big") if timestamp >= _EXTENDED else b""
        first = b"".join(
            (
                _basic_header(0, csid),
                min(timestamp, _EXTENDED).to_bytes(3, "big"),
                length.to_bytes(3, "big"),
                bytes((message.type_id,)),
                message.stream_id.to_bytes(4, "little"),
                ext,
            )
        )
        continuation = _basic_header(3, csid) + ext

        size = self._chunk_size
        view = memoryview(message.payload)
        parts: list[bytes | memoryview] = [first, view[:size]]
        for offset in range(size, length, size):
            parts.append(continuation)
            parts.append(view[offset : offset + size])
        return b"".join(parts)
