"""The port through which the control plane stores, reads and deletes resource files.

Control never imports the storage backends (the import arrows); the composition root hands
the app an implementation over the configured storage (mediaserver/resource_files.py), as
it does the `MediaStore`. Keys are `resources/{course_id}/{name}`, a name the control plane
makes (never the uploader's filename), so storage/usage.py counts them as "resources" and
retention never touches them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["RESOURCES_PREFIX", "ResourceStore"]

RESOURCES_PREFIX = "resources/"


class ResourceStore(Protocol):
    async def save(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Store what `chunks` yields under `key`, never holding it all in memory; returns
        the bytes stored. When `chunks` raises (the cap, a refused type, a dropped
        upload), nothing is left in storage and the exception propagates."""
        ...

    def read(self, key: str, start: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        """`length` bytes (None: to the end) from offset `start`, in chunks (KeyError when
        the object is missing)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the file; a missing one is not an error."""
        ...
