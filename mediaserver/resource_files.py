"""The control plane's `ResourceStore` port over the configured storage.

An upload is written chunk by chunk to a spool file on local disk, then handed to storage
as a file (`put_file`: S3 takes it in parts, the local backend renames it into place), so
no upload is ever held in memory and storage sees a file only once it arrived whole and
passed its checks. A refused or dropped upload leaves only its spool file, removed at once.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from config.settings import Settings
from transcode.storage.backend import Storage

__all__ = ["ResourceFiles", "resource_spool"]


def resource_spool(settings: Settings) -> Path:
    """Where uploads wait while they arrive: beside the media spool, in data_dir."""
    return settings.server.data_dir / "resource-spool"


class ResourceFiles:
    def __init__(self, storage: Storage, spool_dir: Path) -> None:
        self._storage = storage
        self._spool_dir = spool_dir

    async def save(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        await asyncio.to_thread(self._spool_dir.mkdir, parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, ".upload", "resource-",
                                           str(self._spool_dir))
        size = 0
        try:
            with os.fdopen(fd, "wb") as spool:
                async for chunk in chunks:
                    await asyncio.to_thread(spool.write, chunk)
                    size += len(chunk)
            await self._storage.put_file(key, name, content_type)
        finally:
            await asyncio.to_thread(Path(name).unlink, missing_ok=True)
        return size

    def read(self, key: str, start: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        return self._storage.stream_range(key, start, length)

    async def delete(self, key: str) -> None:
        await self._storage.delete(key)
