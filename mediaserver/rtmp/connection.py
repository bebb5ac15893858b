"""One RTMP connection: the handshake, a publisher's command dialogue, then media to a sink.

What encoders send, and what each waits for:

    OBS (librtmp)    Set Chunk Size, connect            -> waits for connect's _result
                     releaseStream, FCPublish, createStream (fired together)
                                                        -> waits for createStream's _result
                     publish                            -> waits for onStatus Publish.Start
    ffmpeg           connect -> (same as OBS; no Set Chunk Size before connect)

After `connect` we send Window Acknowledgement Size, Set Peer Bandwidth and our own Set
Chunk Size, then `_result`. A `publish` is a publisher arriving (mediaserver/publishing.py:
the key is authorized, the course's slot claimed, the session made live, a sink made); only
then do we answer `NetStream.Publish.Start`. Refusals are `onStatus` errors followed by
closing the connection: librtmp (OBS) closes on Publish.BadName/Rejected/Denied/Failed and
logs the description; ffmpeg prints "Server error: <description>" and exits non-zero. Both
show only the description, so it says what to fix; it never repeats the stream key.

Hostile peers: every limit breaks only this connection. Until a publish is accepted the
peer is a stranger and gets little: the handshake and the publish must both be done within
`auth_timeout` of connecting (short: encoders do it in well under a second), it may send at
most `max_bytes_before_publish` bytes in at most `max_messages_before_publish` messages,
no chunk size below `min_chunk_size_before_publish` (every encoder we know sends 128 or
4096; 1-byte chunks cost the parser ~30 ms of loop per 64 KiB), and the chunk reader's
message limits are small. Once publishing: a read idle for `timeout` closes the
connection and writes wait for the peer at most `timeout`. Always: one read is parsed
`parse_budget_chunks` chunks at a time, with a yield to the event loop in between, so no
connection holds the loop for more than about a millisecond at a time. Stream keys are
never logged: at most a short hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from mediaserver import amf0
from mediaserver.amf0 import Amf0Error, Amf0Value
from mediaserver.flv import enhanced_audio, enhanced_video_fourcc, metadata_fourcc, onmetadata
from mediaserver.key_fingerprint import key_fingerprint
from mediaserver.media_sink import MediaSink
from mediaserver.publisher_slots import Publication
from mediaserver.publishing import Arrival, Publishing, Refusal, Refused
from mediaserver.rtmp import messages
from mediaserver.rtmp.chunks import ChunkError, ChunkReader, ChunkWriter, Message
from mediaserver.rtmp.handshake import HandshakeError, ServerHandshake
from mediaserver.rtmp.messages import LimitType, MessageError, MessageType, UserControlEvent

__all__ = ["ConnectionConfig", "RtmpConnection", "key_fingerprint"]

log = logging.getLogger("mediaserver.rtmp")

READ_SIZE = 64 * 1024
# Chunk streams for what we send: connection-level commands, stream-level status.
_CSID_COMMAND = 3
_CSID_STATUS = 5
# Before a publish is accepted nobody needs big messages: a connect is a few hundred bytes.
_UNAUTHENTICATED_MAX_MESSAGE = 64 * 1024
_UNAUTHENTICATED_MAX_PENDING = 256 * 1024
_UNAUTHENTICATED_MAX_CHUNK_STREAMS = 8
# A client creating streams in a loop is not an encoder.
_MAX_CREATED_STREAMS = 8
_FMS_VERSION = "FMS/3,0,1,123"
_CAPABILITIES = 31.0

# How each refusal is told to the encoder: the status code and the description it shows.
_REFUSALS: dict[Refused, tuple[str, str]] = {
    Refused.KEY_CHECK_FAILED: ("NetStream.Publish.Failed",
                               "the server could not check the stream key; try again later"),
    Refused.KEY_REFUSED: ("NetStream.Publish.BadName",
                          "stream key refused: copy the key for this course from Academia Live"),
    Refused.COURSE_BUSY: ("NetStream.Publish.BadName",
                          "this course is already live from another encoder"),
    Refused.AT_CAPACITY: ("NetStream.Publish.Rejected",
                          "the server carries its maximum number of live streams; "
                          "try again later"),
    Refused.GO_LIVE_FAILED: ("NetStream.Publish.Failed",
                             "the server could not start the live class; try again later"),
}


@dataclass(frozen=True)
class ConnectionConfig:
    """Per-connection limits and the values we announce to the client."""

    timeout: float = 30.0
    chunk_size: int = 4096
    window_ack_size: int = 2_500_000
    peer_bandwidth: int = 2_500_000
    # Once publishing: the largest message (a 1080p keyframe is 0.1-1 MB) and the
    # partially assembled bytes across chunk streams.
    max_message_size: int = 8 * 1024 * 1024
    max_pending_bytes: int = 16 * 1024 * 1024
    max_chunk_streams: int = 64
    # Bytes queued for a peer that does not read, beyond which it is dropped.
    max_outgoing_bytes: int = 1024 * 1024
    # From connecting to an accepted publish (handshake, connect, key check included):
    # long for an encoder, short for an idle socket holding a connection slot.
    auth_timeout: float = 10.0
    # Before publish: OBS, ffmpeg and GStreamer send a handful of small commands.
    min_chunk_size_before_publish: int = 128
    max_bytes_before_publish: int = 256 * 1024
    max_messages_before_publish: int = 100
    # Chunks parsed between two yields to the event loop (about 1 us each).
    parse_budget_chunks: int = 1024


class _Close(Exception):
    """Stop the connection. `flush`: let queued replies (a refusal) reach the peer first."""

    def __init__(self, reason: str, *, flush: bool = False, level: int = logging.INFO) -> None:
        super().__init__(reason)
        self.reason = reason
        self.flush = flush
        self.level = level


def _command_name(values: list[Amf0Value]) -> str:
    if not values or not isinstance(values[0], str):
        raise _Close("a command message without a command name")
    return values[0]


def _transaction_id(values: list[Amf0Value]) -> float:
    txn = values[1] if len(values) > 1 else 0.0
    return txn if isinstance(txn, float) else 0.0


def _amf_payload(message: Message) -> bytes:
    # AMF3 command/data messages (17, 15) start with a format byte, then AMF0 values.
    if message.type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3):
        return message.payload[1:]
    return message.payload


def _status(level: str, code: str, description: str) -> dict[str, Amf0Value]:
    return {"level": level, "code": code, "description": description}


class RtmpConnection:
    """Serves one accepted TCP connection until it closes. Run `run()` once."""

    def __init__(
        self,
        connection_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        publishing: Publishing,
        config: ConnectionConfig,
    ) -> None:
        self.connection_id = connection_id
        self._reader = reader
        self._writer = writer
        self._publishing = publishing
        self._config = config
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._chunks = ChunkReader(
            max_message_size=_UNAUTHENTICATED_MAX_MESSAGE,
            max_pending_bytes=_UNAUTHENTICATED_MAX_PENDING,
            max_chunk_streams=_UNAUTHENTICATED_MAX_CHUNK_STREAMS,
        )
        self._chunks.min_chunk_size = config.min_chunk_size_before_publish
        self._out = ChunkWriter()
        self._acks = messages.Acknowledger()
        self._task: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._connected = False
        self._app = ""
        self._created_streams: set[int] = set()
        self._publication: Publication | None = None  # the course slot we hold
        self._sink: MediaSink | None = None
        self._media_stream_id = 0
        self._publish_deadline = 0.0
        # What the peer sent since connecting (or unpublishing) without publishing.
        self._bytes_before_publish = 0
        self._messages_before_publish = 0
        self._published = False  # has this connection published and then stopped?

    # ------------------------------------------------------------------ lifecycle

    @property
    def publishing(self) -> bool:
        """Whether this connection holds a course (it then leaves the per-address cap)."""
        return self._publication is not None

    @property
    def course_id(self) -> int | None:
        """The course this connection publishes into, if it does."""
        return self._publication.course_id if self._publication is not None else None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running `run()`, once it started."""
        return self._task

    def stop(self, reason: str) -> None:
        """Close this connection from outside (server shutdown, class ended); cleanup runs."""
        self._stop_reason = reason
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        prefix = f"rtmp#{self.connection_id} {self.peer}"
        flush = False
        try:
            await self._handshake()
            await self._dialogue()
        except _Close as close:
            log.log(close.level, "%s: %s", prefix, close.reason)
            flush = close.flush
        except HandshakeError as exc:
            log.info("%s: handshake refused: %s", prefix, exc)
        except (ChunkError, MessageError, Amf0Error) as exc:
            log.info("%s: protocol error, closing: %s", prefix, exc)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("%s: connection lost: %s", prefix, exc or type(exc).__name__)
        except asyncio.CancelledError:
            log.info("%s: closed by the server: %s", prefix, self._stop_reason or "cancelled")
            raise
        except Exception:
            # A bug here must end this connection only.
            log.exception("%s: unexpected error, closing", prefix)
        finally:
            await self._end_publishing()
            await self._close_transport(flush=flush)

    async def _close_transport(self, *, flush: bool) -> None:
        writer = self._writer
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._config.timeout):
                if flush and not writer.is_closing():
                    # A refusal is worth a short wait: the client shows its description.
                    await writer.drain()
                    writer.close()
                else:
                    writer.transport.abort()
                await writer.wait_closed()
        writer.transport.abort()  # a no-op once closed; drops a peer that never read

    # ------------------------------------------------------------------ I/O

    async def _read(self, seconds: float, *, idle: str, closed: str) -> bytes:
        """Some bytes, or _Close with `idle` after `seconds`, or with `closed` on EOF."""
        try:
            async with asyncio.timeout(seconds):
                data = await self._reader.read(READ_SIZE)
        except TimeoutError:
            raise _Close(idle) from None
        if not data:
            raise _Close(closed)
        return data

    def _send(self, *outgoing: Message) -> None:
        for message in outgoing:
            self._writer.write(self._out.encode(message))
        queued = self._writer.transport.get_write_buffer_size()
        if queued > self._config.max_outgoing_bytes:
            raise _Close(f"the peer is not reading ({queued} bytes queued)")

    async def _flush(self) -> None:
        try:
            async with asyncio.timeout(self._config.timeout):
                await self._writer.drain()
        except TimeoutError:
            raise _Close(f"the peer read nothing for {self._config.timeout:g} s") from None

    def _command(self, *values: Amf0Value, stream_id: int = 0, csid: int = _CSID_COMMAND) -> None:
        self._send(Message(MessageType.COMMAND_AMF0, stream_id, 0, amf0.encode(*values), csid))

    def _on_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        self._command(
            "onStatus", 0.0, None, _status(level, code, description),
            stream_id=stream_id, csid=_CSID_STATUS,
        )

    def _refuse(self, stream_id: int, code: str, description: str, log_line: str) -> _Close:
        """Tell the client why (status error), then close once it has been sent."""
        self._on_status(stream_id, "error", code, description)
        return _Close(log_line, flush=True, level=logging.WARNING)

    # ------------------------------------------------------------------ handshake

    async def _handshake(self) -> None:
        timeout = self._config.auth_timeout
        handshake = ServerHandshake(epoch_ms=int(time.monotonic() * 1000))
        # One deadline for the handshake and the publish: a slot is held only so long.
        self._publish_deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(self._publish_deadline):
                while not handshake.done:
                    data = await self._reader.read(READ_SIZE)
                    if not data:
                        raise _Close("the peer closed the connection during the handshake")
                    reply = handshake.feed(data)
                    if reply:
                        self._writer.write(reply)
                        await self._writer.drain()
        except TimeoutError:
            raise _Close(f"handshake not completed within {timeout:g} s") from None
        log.debug("rtmp#%d: handshake done (%s)", self.connection_id,
                  "digest" if handshake.digest else "plain")
        if handshake.leftover:
            await self._received(handshake.leftover)

    # ------------------------------------------------------------------ dialogue

    async def _dialogue(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._config.timeout
        while True:
            if self._publication is not None:
                data = await self._read(
                    timeout, idle=f"no media for {timeout:g} s: dropping the publisher",
                    closed="the publisher closed the connection",
                )
            else:
                left = self._publish_deadline - loop.time()
                data = await self._read(
                    max(left, 0.0),
                    idle=f"no publish within {self._config.auth_timeout:g} s of connecting",
                    closed=(
                        "the peer closed the connection after unpublishing"
                        if self._published
                        else "the peer closed the connection before publishing"
                    ),
                )
            await self._received(data)

    async def _received(self, data: bytes) -> None:
        config = self._config
        if self._publication is None:
            self._bytes_before_publish += len(data)
            if self._bytes_before_publish > config.max_bytes_before_publish:
                raise _Close(f"sent {self._bytes_before_publish} bytes without publishing "
                             f"(at most {config.max_bytes_before_publish})")
        batch = self._chunks.feed(data, max_chunks=config.parse_budget_chunks)
        while True:
            for message in batch:
                if self._publication is None:
                    self._count_message_before_publish()
                await self._dispatch(message)
            if not self._chunks.more_buffered:
                break
            # Let everyone else run before parsing the rest of this read.
            await asyncio.sleep(0)
            batch = self._chunks.feed(b"", max_chunks=config.parse_budget_chunks)
        ack = self._acks.on_received(self._chunks.bytes_received)
        if ack is not None:
            self._send(ack)
        await self._flush()

    def _count_message_before_publish(self) -> None:
        self._messages_before_publish += 1
        limit = self._config.max_messages_before_publish
        if self._messages_before_publish > limit:
            raise _Close(f"sent more than {limit} messages without publishing")

    async def _dispatch(self, message: Message) -> None:
        kind = message.type_id
        if kind == MessageType.AUDIO:
            self._audio(message)
        elif kind == MessageType.VIDEO:
            self._video(message)
        elif kind in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
            await self._on_command(message)
        elif kind in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
            self._on_data(message)
        elif kind == MessageType.AGGREGATE:
            for part in messages.split_aggregate(message):
                await self._dispatch(part)
        elif kind == MessageType.WINDOW_ACK_SIZE:
            self._acks.set_window(messages.parse_u32(message.payload))
        elif kind == MessageType.USER_CONTROL:
            event, data = messages.parse_user_control(message.payload)
            if event == UserControlEvent.PING_REQUEST and len(data) >= 4:
                self._send(messages.ping_response(int.from_bytes(data[:4], "big")))
        elif kind in (MessageType.SET_CHUNK_SIZE, MessageType.ABORT):
            pass  # applied by the chunk reader already
        else:
            # Acknowledgement, Set Peer Bandwidth, shared objects: nothing to do.
            log.debug("rtmp#%d: ignoring message type %d", self.connection_id, kind)

    async def _on_command(self, message: Message) -> None:
        values = amf0.decode_all(_amf_payload(message))
        name = _command_name(values)
        txn = _transaction_id(values)
        if name != "connect" and not self._connected:
            raise _Close(f"command {name!r} before connect")
        if name == "connect":
            self._connect(txn, values)
        elif name == "releaseStream":
            self._command("_result", txn, None)
        elif name == "FCPublish":
            self._command("_result", txn, None)
            self._command(
                "onFCPublish", 0.0, None,
                _status("status", "NetStream.Publish.Start", "FCPublish"),
            )
        elif name == "createStream":
            self._create_stream(txn)
        elif name == "publish":
            await self._publish(message.stream_id, values)
        elif name == "FCUnpublish":
            self._command("_result", txn, None)
            await self._unpublish("FCUnpublish")
        elif name in ("deleteStream", "closeStream"):
            await self._unpublish(name)
        elif name == "play":
            raise self._refuse(
                message.stream_id, "NetStream.Play.Failed",
                "this server takes published streams only; watch the class in the web page",
                "refused a play request",
            )
        elif txn:
            # Something that waits for an answer (_checkbw, getStreamLength...): say no
            # rather than leave it hanging.
            self._command(
                "_error", txn, None,
                _status("error", "NetConnection.Call.Failed", f"unknown command {name[:40]}"),
            )
        else:
            log.debug("rtmp#%d: ignoring command %r", self.connection_id, name[:40])

    def _connect(self, txn: float, values: list[Amf0Value]) -> None:
        if self._connected:
            raise _Close("a second connect on one connection")
        command = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
        app = command.get("app")
        # nginx-rtmp also drops a ?query from the app; a trailing slash is common in URLs.
        self._app = app.split("?", 1)[0].strip("/") if isinstance(app, str) else ""
        encoding = command.get("objectEncoding")
        object_encoding = encoding if isinstance(encoding, float) else 0.0
        self._connected = True
        config = self._config
        self._send(
            messages.window_ack_size(config.window_ack_size),
            messages.set_peer_bandwidth(config.peer_bandwidth, LimitType.DYNAMIC),
            messages.set_chunk_size(config.chunk_size),
        )
        self._out.set_chunk_size(config.chunk_size)
        self._command(
            "_result", txn,
            {"fmsVer": _FMS_VERSION, "capabilities": _CAPABILITIES},
            {
                **_status("status", "NetConnection.Connect.Success", "Connection succeeded."),
                "objectEncoding": object_encoding,
            },
        )
        # The app may embed the key (a URL pasted whole): log its first segment only.
        log.info("rtmp#%d %s: connected to app %r", self.connection_id, self.peer,
                 self._app.split("/", 1)[0][:40])

    def _create_stream(self, txn: float) -> None:
        if len(self._created_streams) >= _MAX_CREATED_STREAMS:
            raise _Close(f"more than {_MAX_CREATED_STREAMS} createStream calls")
        stream_id = len(self._created_streams) + 1
        self._created_streams.add(stream_id)
        self._command("_result", txn, None, float(stream_id))

    # ------------------------------------------------------------------ publishing

    def _app_and_key(self, values: list[Amf0Value]) -> tuple[str, str]:
        name = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
        # OBS and others may add "?param=..." to the key; it is not part of it.
        key = name.split("?", 1)[0]
        app = self._app
        if not key and "/" in app:
            # A URL pasted whole into the server field (rtmp://host/live/KEY, empty key).
            app, key = app.split("/", 1)
        return app, key

    async def _publish(self, stream_id: int, values: list[Amf0Value]) -> None:
        if self._publication is not None:
            raise self._refuse(stream_id, "NetStream.Publish.BadName",
                               "this connection is already publishing",
                               "a second publish on one connection")
        app, key = self._app_and_key(values)
        fingerprint = key_fingerprint(key)
        answer = await self._publishing.publisher_arrived(Arrival(
            app, key, self.connection_id, self.peer, "RTMP", f"rtmp#{self.connection_id}"))
        if isinstance(answer, Refusal):
            code, description = _REFUSALS[answer.why]
            raise self._refuse(stream_id, code, description,
                               self._refusal_log_line(answer, fingerprint))
        self._publication, self._sink = answer, answer.sink
        answer.on_stop(self.stop)
        course_id, session_id = answer.course_id, answer.session_id
        self._media_stream_id = stream_id
        # Media messages are big; the limits grow only now that the peer is authorized.
        self._chunks.max_message_size = self._config.max_message_size
        self._chunks.max_pending_bytes = self._config.max_pending_bytes
        self._chunks.max_chunk_streams = self._config.max_chunk_streams
        self._chunks.min_chunk_size = 1
        self._send(messages.stream_begin(stream_id))
        self._on_status(stream_id, "status", "NetStream.Publish.Start", "publishing started")
        log.info("rtmp#%d %s: publishing course %d, session %d, key %s", self.connection_id,
                 self.peer, course_id, session_id, fingerprint)

    def _refusal_log_line(self, refusal: Refusal, fingerprint: str) -> str:
        why = refusal.why
        if why is Refused.KEY_CHECK_FAILED:
            return f"key check failed: {refusal.detail}"
        if why is Refused.KEY_REFUSED:
            return f"publish refused ({refusal.detail}), key {fingerprint}"
        if why is Refused.COURSE_BUSY:
            return f"publish refused: {refusal.detail} is already live from another encoder"
        if why is Refused.AT_CAPACITY:
            return f"publish refused: at capacity ({refusal.detail})"
        return f"going live failed: {refusal.detail}"

    async def _unpublish(self, why: str) -> None:
        if self._publication is None:
            return
        stream_id = self._media_stream_id
        log.info("rtmp#%d: %s: course %d stops publishing", self.connection_id, why,
                 self._publication.course_id)
        await self._end_publishing()
        self._on_status(stream_id, "status", "NetStream.Unpublish.Success", "publishing stopped")
        # The client may stay to publish again (or to say goodbye): a fresh window for
        # that, instead of the long-expired one from connecting, with fresh allowances.
        self._publish_deadline = asyncio.get_running_loop().time() + self._config.auth_timeout
        self._bytes_before_publish = self._messages_before_publish = 0
        self._published = True

    async def _end_publishing(self) -> None:
        """Close the sink, then say the publisher left. Safe to call twice."""
        publication, sink = self._publication, self._sink
        self._publication, self._sink = None, None
        if publication is not None:
            publication.on_stop(None)  # leaving already: a stop must not cut this short
        if sink is not None:
            try:
                async with asyncio.timeout(self._config.timeout):
                    await sink.close()
            except Exception:
                log.exception("rtmp#%d: closing the media sink failed", self.connection_id)
        if publication is not None:
            await self._publishing.publisher_left(publication, protocol="RTMP")

    # ------------------------------------------------------------------ media

    def _sink_for(self, message: Message) -> MediaSink | None:
        if self._sink is None or message.stream_id != self._media_stream_id:
            return None  # not publishing (yet), or another stream: nothing to deliver to
        return self._sink

    def _video(self, message: Message) -> None:
        sink = self._sink_for(message)
        if sink is None or not message.payload:
            return
        fourcc = enhanced_video_fourcc(message.payload)
        if fourcc is not None:
            raise self._enhanced_refusal(f"video FourCC {fourcc!r}")
        sink.on_video(message.timestamp, message.payload)

    def _audio(self, message: Message) -> None:
        sink = self._sink_for(message)
        if sink is None or not message.payload:
            return
        if enhanced_audio(message.payload):
            raise self._enhanced_refusal("enhanced audio")
        sink.on_audio(message.timestamp, message.payload)

    def _on_data(self, message: Message) -> None:
        sink = self._sink_for(message)
        if sink is None:
            return
        try:
            values = amf0.decode_all(_amf_payload(message))
        except Amf0Error as exc:
            log.info("rtmp#%d: unreadable data message ignored: %s", self.connection_id, exc)
            return
        metadata = onmetadata(values)
        if metadata is None:
            return
        fourcc = metadata_fourcc(metadata)
        if fourcc is not None:
            raise self._enhanced_refusal(f"metadata videocodecid {fourcc!r}")
        sink.on_metadata(metadata)

    def _enhanced_refusal(self, what: str) -> _Close:
        return self._refuse(
            self._media_stream_id, "NetStream.Publish.Rejected",
            "Enhanced RTMP (HEVC, AV1, VP9) is not supported: set the encoder to H.264 "
            "and the audio to AAC",
            f"refused Enhanced RTMP stream ({what}); the encoder must send H.264",
        )
