"""The port through which the control plane measures storage and deletes a recording.

Control never imports the storage backends (the import arrows); the composition root hands
the app and the retention job an implementation over the configured storage
(mediaserver/recording_store.py). Keys follow the media side's layout: `live/{sid}/...`
(older live media), `recordings/{sid}/...` (segments, playlists, the MP4 and its poster),
`resources/{course_id}/...` (course files: control/resources/resource_store.py).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MediaStore", "StoredObject"]

StoredObject = tuple[str, int]  # (key, size in bytes)


class MediaStore(Protocol):
    async def objects(self) -> list[StoredObject]:
        """Every object storage holds, with its size (one listing, sorted by key)."""
        ...

    async def delete_recording(self, session_id: int) -> int:
        """Delete everything stored under the session's recording; returns how many
        objects went. Raises when storage refused (the caller tries again later)."""
        ...
