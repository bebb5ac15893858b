"""Unsubscribe links: a signed token naming a person and a channel, so the link in a mail
works without signing in, cannot be forged for someone else, and never expires (an old
mail's link must still work)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from config.settings import Settings

__all__ = ["UnsubscribeError", "make_token", "read_token", "unsubscribe_key"]

KEY_FILE_NAME = "unsubscribe-signing-key"


class UnsubscribeError(ValueError):
    """The token is not one this server signed."""


def unsubscribe_key(settings: Settings) -> bytes:
    configured = settings.notifications.unsubscribe_signing_key
    if configured:
        return configured.encode("utf-8")
    path: Path = settings.server.data_dir / KEY_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Exclusive create: two processes starting together keep the first one's key.
        try:
            with path.open("x", encoding="ascii") as out:
                out.write(secrets.token_hex(32))
            path.chmod(0o600)
        except FileExistsError:
            pass
    return path.read_text(encoding="ascii").strip().encode("ascii")


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, b"unsubscribe:" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


def make_token(key: bytes, user_id: int, channel: str = "email") -> str:
    payload = f"{user_id}.{channel}"
    return f"{payload}.{_mac(key, payload)}"


def read_token(key: bytes, token: str) -> tuple[int, str]:
    """(user id, channel) of a token this server signed, else UnsubscribeError."""
    payload, _, mac = token.rpartition(".")
    user, _, channel = payload.partition(".")
    if not user.isdigit() or not channel or not hmac.compare_digest(mac, _mac(key, payload)):
        raise UnsubscribeError("this unsubscribe link is not valid")
    return int(user), channel
