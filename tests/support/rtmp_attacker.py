"""An RTMP client that costs the server parsing work without ever asking to publish.

It finishes the handshake, sends Set Chunk Size (1 by default) and then streams audio
messages, chopped into chunks of that size, that nobody will ever use: no `connect`, no
stream key. It runs in its own thread on a blocking socket, so a test or a benchmark can
run the server on its event loop while the attack goes on without sharing that loop.
With `reconnect`, it comes back at once whenever the server closes it, as a real attacker
would.
"""

from __future__ import annotations

import socket
import threading

from mediaserver.rtmp import messages
from mediaserver.rtmp.chunks import ChunkWriter, Message
from mediaserver.rtmp.handshake import BLOCK_SIZE, client_c0c1, client_c2
from mediaserver.rtmp.messages import MessageType

_AAC_FRAME = bytes([0xAF, 0x01]) + bytes(198)


def attack_bytes(chunk_size: int, size: int = 256 * 1024) -> tuple[bytes, bytes]:
    """(Set Chunk Size `chunk_size`, about `size` bytes of audio chunked at that size): the
    first is sent once per connection, the second over and over."""
    writer = ChunkWriter()
    prefix = writer.encode(messages.set_chunk_size(chunk_size))
    writer.set_chunk_size(chunk_size)
    parts: list[bytes] = []
    total, timestamp = 0, 0
    while total < size:
        part = writer.encode(Message(MessageType.AUDIO, 1, timestamp, _AAC_FRAME, 4))
        parts.append(part)
        total += len(part)
        timestamp += 21
    return prefix, b"".join(parts)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        got = sock.recv(size - len(data))
        if not got:
            raise ConnectionError("closed during the handshake")
        data += got
    return bytes(data)


class Attacker(threading.Thread):
    """Streams `attack_bytes(chunk_size)` to host:port until `stop()`, from `source`.

    `connections` counts connections that finished the handshake; `closed_by_server`
    counts those the server ended (EOF or reset while we were still sending).
    """

    def __init__(self, host: str, port: int, *, chunk_size: int = 1, reconnect: bool = False,
                 source: str | None = None) -> None:
        super().__init__(daemon=True, name=f"rtmp-attacker-{chunk_size}")
        self.host, self.port, self.source = host, port, source
        self.reconnect = reconnect
        self.prefix, self.blob = attack_bytes(chunk_size)
        self.connections = 0
        self.closed_by_server = 0
        self.bytes_sent = 0
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None

    def stop(self) -> None:
        self._stopping.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(10)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._one_connection()
            except OSError:
                if self._stopping.is_set():
                    return
                self.closed_by_server += 1
            if not self.reconnect:
                return

    def _one_connection(self) -> None:
        source = (self.source, 0) if self.source else None
        with socket.create_connection((self.host, self.port), timeout=10,
                                      source_address=source) as sock:
            self._sock = sock
            c0c1 = client_c0c1(False)
            sock.sendall(c0c1)
            s0s1s2 = _read_exactly(sock, 1 + 2 * BLOCK_SIZE)
            sock.sendall(client_c2(s0s1s2[1 : 1 + BLOCK_SIZE]))
            self.connections += 1
            sock.sendall(self.prefix)
            while not self._stopping.is_set():
                sock.sendall(self.blob)
                self.bytes_sent += len(self.blob)
            self._sock = None
