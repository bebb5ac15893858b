"""The RTMP server: accepts encoder connections and runs one `RtmpSession` per connection.

It owns what outlives a connection: the listening socket, the table of open connections
(bounded by `max_connections`), the `LiveRegistry` of courses being published, and what
happens once a publisher is gone (`_stream_gone`). Everything about a single connection
lives in session.py.

At `max_connections`, a new connection evicts the oldest one that is not publishing (idle,
or still handshaking): a flood of idle sockets then churns among itself instead of locking
teachers out. Only when every connection publishes is the newcomer refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from types import TracebackType

from mediaserver.control_port import ControlPort
from mediaserver.live_registry import LiveRegistry, Publication
from mediaserver.media_sink import SinkFactory
from mediaserver.publication_end import end_publication
from mediaserver.rtmp.chunks import MAX_CHUNK_SIZE
from mediaserver.rtmp.session import RtmpSession, SessionConfig

__all__ = ["RtmpServer"]

log = logging.getLogger("mediaserver.rtmp")

# Room for a burst of simultaneous connects; the kernel caps it at somaxconn anyway.
_LISTEN_BACKLOG = 1024
# Under a connection flood, one log line per this many seconds, not one per socket.
_REFUSAL_LOG_INTERVAL = 10.0
_WRITE_BUFFER_HIGH = 64 * 1024


class RtmpServer:
    """RTMP ingest for published streams.

    `control` answers "may this key publish?" and records streams starting and ending;
    `sink_factory(course_id, session_id)` makes the sink an accepted publish's media goes
    to. `timeout` bounds the handshake, the wait for a publish, idle reads and blocked
    writes (settings.streaming.rtmp_timeout_seconds); `max_connections` bounds open
    sockets; `chunk_size` is what we announce and send with; `config` holds the rarer
    per-connection limits (its timeout and chunk size are replaced by the arguments).
    `port=0` picks a free port (see `port` after `start()`).
    """

    def __init__(
        self,
        control: ControlPort,
        sink_factory: SinkFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 1935,
        timeout: float = 30.0,
        max_connections: int = 1000,
        chunk_size: int = 4096,
        registry: LiveRegistry | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {chunk_size} outside 1..{MAX_CHUNK_SIZE}")
        self.control = control
        self.sink_factory = sink_factory
        self.host = host
        self._requested_port = port
        self.max_connections = max_connections
        self.registry = registry if registry is not None else LiveRegistry()
        base = config if config is not None else SessionConfig()
        self.config = dataclasses.replace(base, timeout=timeout, chunk_size=chunk_size)
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        # Insertion order is age order: the eviction scan finds the oldest first.
        self._sessions: dict[int, RtmpSession] = {}
        self._refused_since_log = 0
        self._last_refusal_log = -_REFUSAL_LOG_INTERVAL

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the RTMP server is already started")
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, backlog=_LISTEN_BACKLOG
        )
        log.info("RTMP server listening on %s:%d", self.host, self.port)

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the RTMP server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connection_count(self) -> int:
        return len(self._sessions)

    async def close(self) -> None:
        """Stop listening, close every connection (publishers' streams end), wait for them."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sessions = list(self._sessions.values())
        tasks = [s.task for s in sessions if s.task is not None]
        for session in sessions:
            session.stop("server shutting down")
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> RtmpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._sessions) >= self.max_connections and not self._evict_one():
            self._log_refusal()
            writer.transport.abort()
            return
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        connection_id = next(self._ids)
        session = RtmpSession(
            connection_id,
            reader,
            writer,
            control=self.control,
            registry=self.registry,
            sink_factory=self.sink_factory,
            stream_gone=self._stream_gone,
            config=self.config,
        )
        self._sessions[connection_id] = session
        try:
            await session.run()
        except asyncio.CancelledError:
            # Stopped (shutdown, eviction) and already cleaned up. Ending normally matters:
            # asyncio 3.11 reports a cancelled connection callback as an unhandled error.
            pass
        finally:
            self._sessions.pop(connection_id, None)

    def disconnect_course(self, course_id: int, reason: str) -> bool:
        """Close the connection publishing into `course_id` (the class was ended from the
        web app); False when none does."""
        for session in self._sessions.values():
            if session.course_id == course_id:
                session.stop(reason)
                return True
        return False

    def _evict_one(self) -> bool:
        """Stop the oldest connection that holds no course; False if all publish."""
        for connection_id, session in self._sessions.items():
            if not session.publishing:
                del self._sessions[connection_id]
                session.stop(f"evicted: {self.max_connections} connections open")
                return True
        return False

    def _log_refusal(self) -> None:
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            log.warning("RTMP: refused %d connection(s): %d open, all publishing",
                        self._refused_since_log, len(self._sessions))
            self._refused_since_log = 0
            self._last_refusal_log = now

    async def _stream_gone(self, publication: Publication) -> None:
        """A publisher went away (closed, unpublished, dropped, or failed to start)."""
        await end_publication(self.control, self.registry, publication, protocol="RTMP")
