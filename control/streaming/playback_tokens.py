"""Playback tokens: short signed grants that let one person play one session until a time.

A token is put in the media URL path (/play/{session_id}/{token}/master.m3u8), so it is
base64url without padding: no "/" and nothing to escape. It holds the session, the user
(none for a signed-out viewer of a public course) and the expiry in whole POSIX seconds,
followed by an HMAC-SHA256 of those bytes. It proves who asked and until when; whether
that person may still watch is asked again when it is used (control.streaming.playback_access).

The key is settings.streaming.playback_signing_key, else a random key kept in
<data_dir>/playback-signing.key, so tokens survive a restart and every process sharing
the data_dir signs alike.

Other short grants (a course resource's download, control/resources/download_tokens.py)
use the same tokens and key under their own `scope`: the scope is signed with the payload,
so a grant of one kind never opens another (playback tokens have the empty scope).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from config.settings import Settings

__all__ = [
    "KEY_FILE_NAME",
    "PlaybackClaim",
    "PlaybackSigner",
    "PlaybackTokenError",
    "signing_key",
]

KEY_FILE_NAME = "playback-signing.key"
_VERSION = 1
# version, session id, expiry (POSIX seconds), user id (-1: signed out)
_PAYLOAD = struct.Struct(">BQQq")
_SIGNATURE_BYTES = 32
_TOKEN_BYTES = _PAYLOAD.size + _SIGNATURE_BYTES
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_ANONYMOUS = -1


class PlaybackTokenError(Exception):
    """A token that grants nothing; `reason` is bad_token, expired or wrong_session."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PlaybackClaim:
    session_id: int
    user_id: int | None
    expires_at: datetime


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    # The decoder silently skips foreign characters, so the alphabet is checked first.
    if not _ALPHABET.fullmatch(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


class PlaybackSigner:
    """Issues and checks playback tokens with one secret key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a playback signing key must not be empty")
        self._key = key

    def _sign(self, payload: bytes, scope: bytes = b"") -> bytes:
        # Every payload has the same length, so a scoped message never equals an unscoped one.
        return hmac.new(self._key, scope + payload, hashlib.sha256).digest()

    def issue(self, session_id: int, user_id: int | None, expires_at: datetime, *,
              scope: bytes = b"") -> str:
        """A token for `user_id` (None: signed out) to play `session_id` until `expires_at`
        (an aware datetime; kept to the second, rounded down)."""
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a time zone")
        payload = _PAYLOAD.pack(
            _VERSION,
            session_id,
            int(expires_at.timestamp()),
            _ANONYMOUS if user_id is None else user_id,
        )
        return _b64encode(payload + self._sign(payload, scope))

    def verify(self, token: str, *, session_id: int, now: datetime,
               scope: bytes = b"") -> PlaybackClaim:
        """The token's claim, if it is genuine, for `session_id` and not expired at `now`."""
        raw = _b64decode(token) if len(token) < 120 else None
        if raw is None or len(raw) != _TOKEN_BYTES:
            raise PlaybackTokenError("bad_token")
        payload, signature = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(signature, self._sign(payload, scope)):
            raise PlaybackTokenError("bad_token")
        version, token_session, expiry, user = _PAYLOAD.unpack(payload)
        if version != _VERSION:
            raise PlaybackTokenError("bad_token")
        if token_session != session_id:
            raise PlaybackTokenError("wrong_session")
        expires_at = datetime.fromtimestamp(expiry, UTC)
        if now >= expires_at:
            raise PlaybackTokenError("expired")
        return PlaybackClaim(
            session_id=token_session,
            user_id=None if user == _ANONYMOUS else user,
            expires_at=expires_at,
        )


def _read_key_file(path: Path) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise RuntimeError(
            f"{path} does not hold a playback signing key; delete it to have a new one made"
            " (playback URLs given out before then stop working)"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Writes a new random key unless the file exists; never exposes a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # A hard link appears whole or not at all and never replaces a key another
        # process made first: whichever process links first wins, the others read it.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def signing_key(settings: Settings) -> bytes:
    """The playback signing key: the configured one, else the one kept in data_dir."""
    configured = settings.streaming.playback_signing_key
    if configured:
        return configured.encode("utf-8")
    path = settings.server.data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)
