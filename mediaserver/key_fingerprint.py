"""A stream key's short fingerprint: what logs show of a key, never the key itself.

Shared by every ingest protocol (RTMP, WHIP), so one key reads the same in both.
"""

from __future__ import annotations

import hashlib

__all__ = ["key_fingerprint"]


def key_fingerprint(key: str) -> str:
    """What logs may say about a stream key: a short hash prefix, enough to correlate."""
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
