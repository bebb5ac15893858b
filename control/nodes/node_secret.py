"""The secret media nodes and control processes share (`cluster.node_secret`).

Both directions carry it as `Authorization: Bearer <secret>`: a media node asking the
control plane, and the control plane telling a node to stop a class. Compared in
constant time, so response timing reveals nothing of it; never logged.
"""

from __future__ import annotations

import hmac

__all__ = ["bearer_header", "carries_secret"]


def bearer_header(secret: str) -> dict[str, str]:
    """The header a caller sends."""
    return {"Authorization": f"Bearer {secret}"}


def carries_secret(authorization: str | None, secret: str) -> bool:
    """Whether an Authorization header carries `secret`. An empty secret admits nobody."""
    if not secret or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), secret.encode())
