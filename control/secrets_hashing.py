"""Random secrets (sign-in tokens, stream keys) and the one-way digests we store instead."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    """A URL-safe secret with a readable prefix, e.g. `sk_...` for stream keys."""
    return prefix + secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    # Secrets are long and random, so a fast unsalted hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()
