"""The storage interface every backend implements, and the rules for object keys.

Keys are relative, '/'-separated paths ("live/12/hd/00042.ts"). Live media is kept
under `live/`, recordings under `recordings/`: cleaning a live window deletes by key
within `live/` only, so a recording is never touched.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["LIVE_PREFIX", "RECORDINGS_PREFIX", "SizedKeys", "Storage", "StorageError", "check_key"]

LIVE_PREFIX = "live/"
RECORDINGS_PREFIX = "recordings/"

# (key, size in bytes) pairs; named here since `list` is a method's name inside a backend.
SizedKeys = list[tuple[str, int]]

# Used with fullmatch: `$` would also accept a trailing newline.
_KEY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


class StorageError(Exception):
    """Storage could not be reached or refused the operation; retrying may succeed."""


def check_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise ValueError."""
    if not _KEY.fullmatch(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"not a valid storage key: {key!r}")
    return key


class Storage(Protocol):
    """An object store. Every method may raise StorageError; none blocks the event loop."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing what was there, atomically for readers."""
        ...

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        """Store a local file (large recordings) without reading it all into memory."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        ...

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The object's bytes in chunks (raises KeyError when missing)."""
        ...

    def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """`length` bytes (None: to the end) from offset `start`, in chunks (raises
        KeyError when missing): byte ranges of a recording for players that seek."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such key."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; returns how many."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """The keys starting with `prefix`, sorted."""
        ...

    async def list_sizes(self, prefix: str) -> SizedKeys:
        """(key, size in bytes) of every object whose key starts with `prefix`, sorted by
        key: one listing, not a size request per object (measuring what storage holds)."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
