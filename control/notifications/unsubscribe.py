"""Unsubscribe links: a signed token naming a person and a channel, so the link in a mail
works without signing in, cannot be forged for someone else, and never expires (an old
mail's link must still work)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from config.settings import Settings
from control.streaming.playback_tokens import signing_key

__all__ = ["UnsubscribeError", "make_token", "read_token", "unsubscribe_key"]


class UnsubscribeError(ValueError):
    """The token is not one this server signed."""


def unsubscribe_key(settings: Settings) -> bytes:
    """Derived from the playback signing key, which every control process already shares
    (a link mailed by one process works on any other), and apart from it: an unsubscribe
    token is never a playback token."""
    return hmac.new(signing_key(settings), b"academia unsubscribe links", hashlib.sha256).digest()


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
