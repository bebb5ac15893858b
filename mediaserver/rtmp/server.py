"""The RTMP server: accepts encoder connections and runs one `RtmpConnection` per connection.

It owns the listening socket and the table of open connections. A connection that
publishes goes through mediaserver/publishing.py (which holds the `PublisherSlots` of
courses being published, shared with WHIP); everything about a single connection lives in
session.py.

Two caps bound the connections: `max_connections` in all, and `max_connections_per_ip`
connections from one address that are not publishing (handshaking, connecting, waiting
for their key check, or idle). Publishers do not count toward the second, so a school
whose classrooms share one NAT address can run many classes at once; a single address
cannot hold more than a few not-yet-trusted slots. A connection over either cap is
refused: closed at once, before any byte is read. Nobody already connected is ever
evicted for a newcomer, so a flood cannot push out a teacher in the middle of the
handshake or the key check; idle strangers leave by themselves at the session's
`auth_timeout`.

At `start()`, `max_connections` is checked against the open-files limit (see
mediaserver/open_files.py): the soft limit is raised if it must be, and the cap is lowered,
with a warning, if even the hard limit cannot hold it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from types import TracebackType

from mediaserver.open_files import fit_connection_cap
from mediaserver.publisher_slots import PublisherSlots
from mediaserver.publishing import Publishing
from mediaserver.rtmp.chunks import MAX_CHUNK_SIZE
from mediaserver.rtmp.connection import ConnectionConfig, RtmpConnection

__all__ = ["RtmpServer"]

log = logging.getLogger("mediaserver.rtmp")

# Room for a burst of simultaneous connects; the kernel caps it at somaxconn anyway.
_LISTEN_BACKLOG = 1024
# Under a connection flood, one log line per this many seconds, not one per socket.
_REFUSAL_LOG_INTERVAL = 10.0
_WRITE_BUFFER_HIGH = 64 * 1024
# File descriptors kept for everything else than RTMP connections (HTTP clients, the
# database, log and media files), and per live stream (the worker's pipes, spool files).
_OTHER_FILES = 256
_FILES_PER_STREAM = 8
_STREAMS_IF_UNBOUNDED = 50


class RtmpServer:
    """RTMP ingest for published streams.

    `publishing` is where a publish arrives and leaves (authorization, the course's slot, going
    live, the sink; see mediaserver/publishing.py). `timeout` bounds a publisher's idle
    reads and blocked writes (settings.streaming.rtmp_timeout_seconds); `auth_timeout` the
    time from connecting to an accepted publish (rtmp_auth_timeout_seconds; by default the
    smaller of `timeout` and 10 s); `max_connections` and `max_connections_per_ip` bound
    open sockets (see the module docstring); `chunk_size` is what we announce and send
    with; `config` holds the rarer per-connection limits (its timeouts and chunk size are
    replaced by the arguments). `port=0` picks a free port (see `port` after `start()`).
    """

    def __init__(
        self,
        publishing: Publishing,
        *,
        host: str = "127.0.0.1",
        port: int = 1935,
        timeout: float = 30.0,
        auth_timeout: float | None = None,
        max_connections: int = 1000,
        max_connections_per_ip: int = 20,
        chunk_size: int = 4096,
        config: ConnectionConfig | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if auth_timeout is None:
            auth_timeout = min(timeout, ConnectionConfig.auth_timeout)
        if auth_timeout <= 0:
            raise ValueError(f"auth_timeout must be positive, not {auth_timeout}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if max_connections_per_ip < 1:
            raise ValueError(
                f"max_connections_per_ip must be at least 1, not {max_connections_per_ip}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {chunk_size} outside 1..{MAX_CHUNK_SIZE}")
        self.publishing = publishing
        self.host = host
        self._requested_port = port
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        base = config if config is not None else ConnectionConfig()
        self.config = dataclasses.replace(base, timeout=timeout, auth_timeout=auth_timeout,
                                          chunk_size=chunk_size)
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._sessions: dict[int, RtmpConnection] = {}
        self._by_address: dict[str, set[RtmpConnection]] = {}
        self._refused_since_log = 0
        self._last_refusal_log = -_REFUSAL_LOG_INTERVAL

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the RTMP server is already started")
        streams = self.registry.max_streams or _STREAMS_IF_UNBOUNDED
        self.max_connections = fit_connection_cap(
            self.max_connections, reserve=_OTHER_FILES + _FILES_PER_STREAM * streams,
            setting="rtmp_max_connections",
        )
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
    def registry(self) -> PublisherSlots:
        """The courses being published (by RTMP and WHIP alike)."""
        return self.publishing.registry

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
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        same_address = self._by_address.setdefault(address, set())
        refusal = None
        if len(self._sessions) >= self.max_connections:
            refusal = f"{len(self._sessions)} connections open (rtmp_max_connections)"
        elif sum(not s.publishing for s in same_address) >= self.max_connections_per_ip:
            refusal = (f"{self.max_connections_per_ip} connections from {address} not "
                       "publishing (rtmp_max_connections_per_ip)")
        if refusal is not None:
            if not same_address:
                del self._by_address[address]
            self._log_refusal(refusal)
            writer.transport.abort()
            return
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        connection_id = next(self._ids)
        session = RtmpConnection(
            connection_id,
            reader,
            writer,
            publishing=self.publishing,
            config=self.config,
        )
        self._sessions[connection_id] = session
        same_address.add(session)
        try:
            await session.run()
        except asyncio.CancelledError:
            # Stopped (shutdown) and already cleaned up. Ending normally matters:
            # asyncio 3.11 reports a cancelled connection callback as an unhandled error.
            pass
        finally:
            self._sessions.pop(connection_id, None)
            same_address.discard(session)
            if not same_address and self._by_address.get(address) is same_address:
                del self._by_address[address]

    def _log_refusal(self, why: str) -> None:
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            log.warning("RTMP: refused %d connection(s) since the last report; the last: %s",
                        self._refused_since_log, why)
            self._refused_since_log = 0
            self._last_refusal_log = now
