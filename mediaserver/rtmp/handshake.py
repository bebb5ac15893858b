"""The RTMP handshake as a sans-I/O state machine: the connection feeds received bytes in
and sends whatever comes back.

    client -> C0 (version 3) + C1 (1536 bytes: time, version-or-zero, random)
    server -> S0 (3) + S1 (1536 bytes) + S2 (1536 bytes, answering C1)
    client -> C2 (1536 bytes, answering S1), then the chunk stream begins

Two flavours of C1 exist. The plain one (OBS, librtmp-based GStreamer rtmpsink) has zeros
in bytes 4..8 and gets S2 = C1 echoed back. The digest-signed ("complex", Flash Player 9+)
one that ffmpeg sends carries a version there and an HMAC-SHA256 digest hidden in the
random bytes at an offset derived from the data itself (two placement schemes). When such
a digest verifies, S1 carries a server digest placed the same way and S2 is signed with a
key derived from the client digest; otherwise we answer plainly, as nginx-rtmp and MediaMTX
do (ffmpeg accepts both).

The client-side helpers at the end (`client_c0c1`, `client_c2`, `verify_server_s2`) exist
so tests can run both flavours end to end in-process.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BLOCK_SIZE",
    "FLASH_MEDIA_SERVER_KEY",
    "FLASH_PLAYER_KEY",
    "RTMP_VERSION",
    "Digest",
    "HandshakeError",
    "ServerHandshake",
    "client_c0c1",
    "client_c2",
    "digest_offset",
    "find_client_digest",
    "find_server_digest",
    "verify_server_s2",
]

RTMP_VERSION = 3
BLOCK_SIZE = 1536  # C1, C2, S1, S2
DIGEST_SIZE = 32  # HMAC-SHA256
_RESPONSE_FILLER = BLOCK_SIZE - DIGEST_SIZE  # signed C2/S2: 1504 random bytes + digest

# Digest placement schemes: the digest offset is the sum of four bytes at OFFSET_AT,
# modulo 728, plus BASE. Scheme 0 is what plain rtmp:// clients use; scheme 1 is RTMPE's.
_OFFSET_AT = (8, 772)
_BASE = (12, 776)
_OFFSET_MODULUS = 728

# The well-known 32 bytes that follow both "Genuine Adobe" key strings.
_GENUINE_SUFFIX = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
FLASH_PLAYER_KEY = b"Genuine Adobe Flash Player 001" + _GENUINE_SUFFIX
FLASH_MEDIA_SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + _GENUINE_SUFFIX
# C1 and S1 digests are keyed with the text part only; the full keys sign C2/S2.
_PLAYER_C1_KEY = FLASH_PLAYER_KEY[:30]
_SERVER_S1_KEY = FLASH_MEDIA_SERVER_KEY[:36]

# Version advertised in a digest S1. ffmpeg only checks the server digest when the first
# byte is >= 3, and a zero version would tell it we answered plainly.
_SERVER_VERSION = bytes((5, 0, 3, 1))
# What ffmpeg puts in C1 bytes 4..8 (Flash Player 9.0.124.2).
_CLIENT_VERSION = bytes((9, 0, 124, 2))
_PLAIN_VERSION = bytes(4)

_ENCRYPTED_VERSIONS = (6, 8, 9)  # RTMPE: plain Diffie-Hellman, XTEA, Blowfish
_TLS_RECORD = 0x16

RandomBytes = Callable[[int], bytes]


class HandshakeError(ValueError):
    """The peer is not speaking a handshake we accept."""


@dataclass(frozen=True)
class Digest:
    """A digest found inside a C1 or S1 block."""

    scheme: int  # 0: offset from bytes 8..12; 1: from bytes 772..776
    offset: int  # where the 32 digest bytes start in the block
    value: bytes


# --------------------------------------------------------------------------- digests


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def digest_offset(block: bytes, scheme: int) -> int:
    """Where a block's digest sits under `scheme` (0 or 1), derived from its own bytes."""
    at = _OFFSET_AT[scheme]
    return sum(block[at : at + 4]) % _OFFSET_MODULUS + _BASE[scheme]


def _block_digest(block: bytes, offset: int, key: bytes) -> bytes:
    # The digest covers the whole block except the 32 bytes where it is stored.
    return _hmac_sha256(key, block[:offset] + block[offset + DIGEST_SIZE :])


def _find_digest(block: bytes, key: bytes) -> Digest | None:
    if len(block) != BLOCK_SIZE:
        raise ValueError(f"handshake blocks are {BLOCK_SIZE} bytes, not {len(block)}")
    for scheme in (0, 1):
        offset = digest_offset(block, scheme)
        stored = block[offset : offset + DIGEST_SIZE]
        if hmac.compare_digest(stored, _block_digest(block, offset, key)):
            return Digest(scheme=scheme, offset=offset, value=stored)
    return None


def find_client_digest(c1: bytes) -> Digest | None:
    """The Flash Player digest in a C1 block, if it has a valid one under either scheme."""
    return _find_digest(c1, _PLAYER_C1_KEY)


def find_server_digest(s1: bytes) -> Digest | None:
    """The Flash Media Server digest in an S1 block, if it has a valid one."""
    return _find_digest(s1, _SERVER_S1_KEY)


def _sign_block(block: bytes, scheme: int, key: bytes) -> bytes:
    offset = digest_offset(block, scheme)
    digest = _block_digest(block, offset, key)
    return block[:offset] + digest + block[offset + DIGEST_SIZE :]


def _signed_response(peer_digest: bytes, full_key: bytes, filler: bytes) -> bytes:
    # S2 (and a digest client's C2): filler, then an HMAC of it keyed with an HMAC of the
    # peer's digest, which proves we found that digest.
    key = _hmac_sha256(full_key, peer_digest)
    return filler + _hmac_sha256(key, filler)


def _random(random_bytes: RandomBytes, size: int) -> bytes:
    data = random_bytes(size)
    if len(data) != size:
        raise ValueError(f"random_bytes({size}) returned {len(data)} bytes")
    return data


def _time_field(epoch_ms: int) -> bytes:
    # A 32-bit millisecond clock that wraps (RTMP timestamps do the same).
    return struct.pack(">I", epoch_ms & 0xFFFFFFFF)


# --------------------------------------------------------------------------- server


def _refuse_version(version: int) -> HandshakeError:
    if version in _ENCRYPTED_VERSIONS:
        return HandshakeError(
            f"client asked for encrypted RTMPE (C0 version {version}), which is not "
            "supported: use plain rtmp://"
        )
    if version == _TLS_RECORD:
        return HandshakeError("client opened with a TLS record (rtmps://?) on the RTMP port")
    if 0x20 <= version < 0x7F:
        return HandshakeError(
            f"not an RTMP client: first byte 0x{version:02x} ({chr(version)!r}), "
            "perhaps HTTP or another text protocol"
        )
    return HandshakeError(f"unsupported RTMP version {version} (only {RTMP_VERSION} is)")


class _State(enum.Enum):
    AWAITING_C0_C1 = enum.auto()
    AWAITING_C2 = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


class ServerHandshake:
    """The server side of one connection's handshake.

    Feed every received byte to `feed` until `done`; send whatever it returns. Bytes that
    arrive after C2 (a client may pipeline its first chunk) are kept in `leftover` for the
    chunk reader.
    """

    def __init__(self, *, epoch_ms: int = 0, random_bytes: RandomBytes = os.urandom) -> None:
        self._epoch_ms = epoch_ms
        self._random_bytes = random_bytes
        self._state = _State.AWAITING_C0_C1
        self._buffer = bytearray()
        self._leftover = b""
        self._client_digest: Digest | None = None

    @property
    def done(self) -> bool:
        """True once C2 has arrived in full."""
        return self._state is _State.DONE

    @property
    def leftover(self) -> bytes:
        """Bytes received after C2: the start of the chunk stream."""
        return self._leftover

    @property
    def digest(self) -> bool:
        """Whether the client used (and we answered) the digest-signed handshake."""
        return self._client_digest is not None

    @property
    def client_digest(self) -> Digest | None:
        """Where the client's digest was found, for logs."""
        return self._client_digest

    def feed(self, data: bytes) -> bytes:
        """Take received bytes; return bytes to send now (S0+S1+S2 once C0+C1 are in).

        Raises HandshakeError on a C0 we refuse, as soon as its byte arrives.
        """
        if self._state is _State.FAILED:
            raise HandshakeError("handshake already failed")
        if self._state is _State.DONE:
            # Only reached if the caller keeps feeding after `done`: keep the bytes in order.
            self._leftover += data
            return b""
        self._buffer += data
        reply = b""
        if self._state is _State.AWAITING_C0_C1:
            reply = self._take_c0_c1()
        if self._state is _State.AWAITING_C2:
            self._take_c2()
        return reply

    def _take_c0_c1(self) -> bytes:
        if self._buffer and self._buffer[0] != RTMP_VERSION:
            self._state = _State.FAILED
            raise _refuse_version(self._buffer[0])
        if len(self._buffer) < 1 + BLOCK_SIZE:
            return b""
        c1 = bytes(self._buffer[1 : 1 + BLOCK_SIZE])
        del self._buffer[: 1 + BLOCK_SIZE]
        self._state = _State.AWAITING_C2
        return bytes((RTMP_VERSION,)) + self._answer(c1)

    def _take_c2(self) -> None:
        # C2's contents are not checked: many clients send garbage there.
        if len(self._buffer) < BLOCK_SIZE:
            return
        self._leftover = bytes(self._buffer[BLOCK_SIZE:])
        self._buffer.clear()
        self._state = _State.DONE

    def _answer(self, c1: bytes) -> bytes:
        """S1 + S2 for this C1."""
        if c1[4:8] != _PLAIN_VERSION:
            self._client_digest = find_client_digest(c1)
        time = _time_field(self._epoch_ms)
        if self._client_digest is None:
            s1 = time + _PLAIN_VERSION + _random(self._random_bytes, BLOCK_SIZE - 8)
            return s1 + c1
        unsigned = time + _SERVER_VERSION + _random(self._random_bytes, BLOCK_SIZE - 8)
        s1 = _sign_block(unsigned, self._client_digest.scheme, _SERVER_S1_KEY)
        filler = _random(self._random_bytes, _RESPONSE_FILLER)
        s2 = _signed_response(self._client_digest.value, FLASH_MEDIA_SERVER_KEY, filler)
        return s1 + s2


# --------------------------------------------------------------------------- client (tests)


def client_c0c1(
    digest: bool,
    *,
    scheme: int = 0,
    epoch_ms: int = 0,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """C0 + C1 as a client sends them: plain (zero version) or digest-signed like ffmpeg."""
    version = _CLIENT_VERSION if digest else _PLAIN_VERSION
    c1 = _time_field(epoch_ms) + version + _random(random_bytes, BLOCK_SIZE - 8)
    if digest:
        c1 = _sign_block(c1, scheme, _PLAYER_C1_KEY)
    return bytes((RTMP_VERSION,)) + c1


def verify_server_s2(c1: bytes, s2: bytes) -> bool:
    """Whether S2 answers C1 the way a Flash Player checks it.

    A digest C1 needs an S2 signed from its digest; a plain C1 needs S2 to echo it. (A
    plain echo of a digest C1 is the fallback answer; ffmpeg accepts it, this check does
    not, so tests can tell the two apart.)
    """
    if len(s2) != BLOCK_SIZE:
        return False
    client = find_client_digest(c1)
    if client is None:
        return s2 == c1
    expected = _signed_response(client.value, FLASH_MEDIA_SERVER_KEY, s2[:_RESPONSE_FILLER])
    return hmac.compare_digest(s2, expected)


def client_c2(s1: bytes, *, random_bytes: RandomBytes = os.urandom) -> bytes:
    """C2 for a server's S1: signed if S1 carries a server digest, else S1 echoed."""
    server = find_server_digest(s1)
    if server is None:
        return s1
    filler = _random(random_bytes, _RESPONSE_FILLER)
    return _signed_response(server.value, FLASH_PLAYER_KEY, filler)
