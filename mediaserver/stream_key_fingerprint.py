"""What the media edge may log about a stream key: never the key, a short hash of it.

RTMP and WHIP ingest both log refusals and publishes; a fingerprint lets an operator
correlate them with a key (the teacher's dashboard shows none) without the logs ever
holding a secret that would let anyone publish.
"""

from __future__ import annotations

import hashlib

__all__ = ["key_fingerprint"]


def key_fingerprint(key: str) -> str:
    """A short hash prefix, enough to correlate log lines."""
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
