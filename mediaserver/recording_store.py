"""The control plane's `MediaStore` port over the configured storage: one listing with
sizes, and a recording's deletion (everything under `recordings/{sid}/`)."""

from __future__ import annotations

from control.storage_policy.media_store import StoredObject
from transcode.storage.backend import RECORDINGS_PREFIX, Storage

__all__ = ["RecordingStore"]


class RecordingStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def objects(self) -> list[StoredObject]:
        return await self._storage.list_sizes("")

    async def delete_recording(self, session_id: int) -> int:
        return await self._storage.delete_prefix(f"{RECORDINGS_PREFIX}{session_id}/")
