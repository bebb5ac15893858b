"""RTMP handshake: plain clients get C1 echoed, digest clients (ffmpeg) get signed S1/S2 in
either placement scheme, input may arrive in any split, and non-RTMP first bytes are refused
at once. Digests are re-derived here from the spec's constants, not only via the module."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Callable

import pytest

from mediaserver.rtmp.handshake import (
    BLOCK_SIZE,
    HandshakeError,
    ServerHandshake,
    client_c0c1,
    client_c2,
    find_client_digest,
    find_server_digest,
    verify_server_s2,
)

SUFFIX = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
PLAYER_KEY = b"Genuine Adobe Flash Player 001" + SUFFIX
SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + SUFFIX


def _rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _offset(block: bytes, scheme: int) -> int:
    at, base = ((8, 12), (772, 776))[scheme]
    return sum(block[at : at + 4]) % 728 + base


def _has_digest(block: bytes, scheme: int, key: bytes) -> bool:
    at = _offset(block, scheme)
    return block[at : at + 32] == _hmac(key, block[:at] + block[at + 32 :])


def _split(reply: bytes) -> tuple[bytes, bytes]:
    assert len(reply) == 1 + 2 * BLOCK_SIZE
    assert reply[0] == 3
    return reply[1 : 1 + BLOCK_SIZE], reply[1 + BLOCK_SIZE :]


def test_key_constants() -> None:
    assert len(PLAYER_KEY) == 62 and len(SERVER_KEY) == 68


def test_plain_handshake_echoes_c1() -> None:
    c0c1 = client_c0c1(False, epoch_ms=77, random_bytes=_rng(1))
    c1 = c0c1[1:]
    assert c1[:8] == struct.pack(">I", 77) + bytes(4)
    server = ServerHandshake(epoch_ms=123_456, random_bytes=_rng(2))
    s1, s2 = _split(server.feed(c0c1))
    assert s2 == c1
    assert s1[:4] == struct.pack(">I", 123_456)
    assert s1[4:8] == bytes(4)  # zero version: tells digest-aware clients "plain"
    assert s1[8:] != c1[8:]
    assert not server.digest and server.client_digest is None
    assert verify_server_s2(c1, s2)
    assert not server.done
    assert server.feed(client_c2(s1)) == b""
    assert server.done and server.leftover == b""


@pytest.mark.parametrize("scheme", [0, 1])
def test_digest_handshake_as_ffmpeg_sends_it(scheme: int) -> None:
    c0c1 = client_c0c1(True, scheme=scheme, random_bytes=_rng(10 + scheme))
    c1 = c0c1[1:]
    assert c1[4:8] != bytes(4)
    # The C1 helper signs as the spec says, under the requested scheme only.
    assert _has_digest(c1, scheme, PLAYER_KEY[:30])
    assert not _has_digest(c1, 1 - scheme, PLAYER_KEY[:30])

    server = ServerHandshake(epoch_ms=5, random_bytes=_rng(20 + scheme))
    s1, s2 = _split(server.feed(c0c1))
    assert server.digest
    found = server.client_digest
    assert found is not None and found.scheme == scheme
    assert found.offset == _offset(c1, scheme)
    client_digest = c1[found.offset : found.offset + 32]

    # S1: a version ffmpeg checks (first byte >= 3) and a server digest in the same scheme.
    assert s1[:4] == struct.pack(">I", 5)
    assert s1[4] >= 3
    assert _has_digest(s1, scheme, SERVER_KEY[:36])
    server_found = find_server_digest(s1)
    assert server_found is not None and server_found.scheme == scheme

    # S2: 1504 bytes signed with a key derived from the client digest and the full key.
    assert s2 != c1
    signing_key = _hmac(SERVER_KEY, client_digest)
    assert s2[1504:] == _hmac(signing_key, s2[:1504])
    assert verify_server_s2(c1, s2)
    assert not verify_server_s2(c1, c1)  # the plain answer is not the signed one

    # The client's signed C2 (which the server does not check) completes it.
    c2 = client_c2(s1, random_bytes=_rng(30))
    assert c2 != s1
    assert c2[1504:] == _hmac(_hmac(PLAYER_KEY, s1[_offset(s1, scheme) :][:32]), c2[:1504])
    assert server.feed(c2) == b""
    assert server.done


def test_digest_looking_version_without_valid_digest_falls_back_to_plain() -> None:
    c1 = struct.pack(">I", 0) + bytes((9, 0, 124, 2)) + _rng(3)(BLOCK_SIZE - 8)
    assert find_client_digest(c1) is None
    server = ServerHandshake(random_bytes=_rng(4))
    s1, s2 = _split(server.feed(b"\x03" + c1))
    assert not server.digest
    assert s2 == c1
    assert s1[4:8] == bytes(4)
    assert find_server_digest(s1) is None


def test_corrupted_digest_falls_back_to_plain() -> None:
    c0c1 = bytearray(client_c0c1(True, random_bytes=_rng(5)))
    c0c1[-1] ^= 0xFF  # outside the digest, so the digest no longer matches
    server = ServerHandshake(random_bytes=_rng(6))
    _, s2 = _split(server.feed(bytes(c0c1)))
    assert not server.digest and s2 == bytes(c0c1[1:])


@pytest.mark.parametrize("digest", [False, True])
def test_bytes_arriving_one_at_a_time(digest: bool) -> None:
    c0c1 = client_c0c1(digest, random_bytes=_rng(7))
    server = ServerHandshake(random_bytes=_rng(8))
    replies = [server.feed(c0c1[i : i + 1]) for i in range(len(c0c1))]
    assert all(r == b"" for r in replies[:-1])
    s1, s2 = _split(replies[-1])
    assert server.digest is digest
    assert verify_server_s2(c0c1[1:], s2)
    c2_and_more = client_c2(s1, random_bytes=_rng(9)) + b"\x03chunk"
    for i, byte in enumerate(c2_and_more[:BLOCK_SIZE]):
        assert not server.done, i
        assert server.feed(bytes((byte,))) == b""
    assert server.done and server.leftover == b""
    # If the caller keeps feeding after `done`, the bytes are kept in order.
    for byte in c2_and_more[BLOCK_SIZE:]:
        server.feed(bytes((byte,)))
    assert server.leftover == b"\x03chunk"


def test_bytes_after_c2_are_left_over_for_the_chunk_reader() -> None:
    server = ServerHandshake(random_bytes=_rng(11))
    s1, _ = _split(server.feed(client_c0c1(False, random_bytes=_rng(12))))
    first_chunk = b"\x03\x00\x00\x00\x00\x00\x40\x14\x00\x00\x00\x00\x02\x00\x07connect"
    assert server.feed(client_c2(s1)[:1000]) == b""
    assert not server.done
    assert server.feed(client_c2(s1)[1000:] + first_chunk) == b""
    assert server.done
    assert server.leftover == first_chunk


def test_everything_in_one_read() -> None:
    server = ServerHandshake(random_bytes=_rng(13))
    c0c1 = client_c0c1(False, random_bytes=_rng(14))
    reply = server.feed(c0c1 + bytes(BLOCK_SIZE) + b"tail")
    _split(reply)
    assert server.done and server.leftover == b"tail"


def test_c2_contents_are_not_checked_but_its_length_is() -> None:
    server = ServerHandshake(random_bytes=_rng(15))
    server.feed(client_c0c1(True, random_bytes=_rng(16)))
    server.feed(b"\xaa" * (BLOCK_SIZE - 1))
    assert not server.done
    server.feed(b"\xaa")
    assert server.done


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (b"\x06", "encrypted RTMPE .*version 6"),
        (b"\x08", "encrypted RTMPE .*version 8"),
        (b"\x09", "encrypted RTMPE .*version 9"),
        (b"G", "not an RTMP client: first byte 0x47 \\('G'\\)"),
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "0x47 \\('G'\\)"),
        (b"\x16\x03\x01\x02\x00", "TLS"),
        (b"\x00", "unsupported RTMP version 0"),
        (b"\x04", "unsupported RTMP version 4"),
    ],
)
def test_wrong_first_byte_is_refused_at_once(first: bytes, message: str) -> None:
    server = ServerHandshake()
    with pytest.raises(HandshakeError, match=message):
        server.feed(first)
    with pytest.raises(HandshakeError, match="already failed"):
        server.feed(b"\x03")
    assert not server.done


def test_time_field_wraps_at_32_bits() -> None:
    server = ServerHandshake(epoch_ms=2**32 + 9, random_bytes=_rng(17))
    s1, _ = _split(server.feed(client_c0c1(False)))
    assert s1[:4] == b"\x00\x00\x00\x09"


def test_default_randomness_and_short_random_source() -> None:
    server = ServerHandshake()
    s1, _ = _split(server.feed(client_c0c1(True)))
    assert server.digest and find_server_digest(s1) is not None
    with pytest.raises(ValueError, match="returned 0 bytes"):
        ServerHandshake(random_bytes=lambda n: b"").feed(client_c0c1(False))


def test_helpers_reject_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="1536"):
        find_client_digest(b"short")
    assert not verify_server_s2(bytes(BLOCK_SIZE), b"short")
