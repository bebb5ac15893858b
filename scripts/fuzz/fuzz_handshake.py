"""Fuzz target: the server side of the RTMP handshake (mediaserver/rtmp/handshake.py).

The only error allowed out is `HandshakeError`, and only for a first byte other than 3.
Whatever the bytes, S0+S1+S2 go out exactly once C0+C1 are in, and everything after C2
ends up in `leftover`, in order.
"""

from __future__ import annotations

from fuzz_pieces import pieces
from mediaserver.rtmp.handshake import BLOCK_SIZE, RTMP_VERSION, HandshakeError, ServerHandshake


def _random(size: int) -> bytes:
    return b"\xa5" * size  # deterministic, so a finding replays exactly


def check(data: bytes) -> None:
    shake = ServerHandshake(epoch_ms=1234, random_bytes=_random)
    sent = b""
    try:
        for piece in pieces(data):
            sent += shake.feed(piece)
    except HandshakeError:
        if data[0] == RTMP_VERSION:
            raise AssertionError("a version-3 C0 was refused") from None
        return
    if len(data) >= 1 + BLOCK_SIZE:
        assert len(sent) == 1 + 2 * BLOCK_SIZE and sent[0] == RTMP_VERSION, len(sent)
    else:
        assert sent == b"", len(sent)
    after_c2 = 1 + 2 * BLOCK_SIZE
    assert shake.done == (len(data) >= after_c2)
    if shake.done:
        assert shake.leftover == data[after_c2:]
