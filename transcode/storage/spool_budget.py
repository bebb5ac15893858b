"""The bytes every upload queue of a node may keep waiting for storage, shared between them.

One `SpoolBudget` is handed to each session's `UploadQueue`: a queue reserves an
operation's bytes before it accepts it and releases them once it is stored (or dropped),
so a storage outage fills the spool up to `max_bytes` and no further, whichever classes
are live. `max_bytes` 0 means no limit (tests, tools).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FREE_SPACE_SHARE", "SpoolBudget", "default_spool_bytes"]

# The share of the data dir's free space the spool may take when no limit is set: the
# rest stays for the database, the recordings' work files and the system.
FREE_SPACE_SHARE = 0.25


def default_spool_bytes(folder: Path) -> int:
    """FREE_SPACE_SHARE of the free space of the file system holding `folder` (or its
    nearest existing parent)."""
    probe = Path(folder).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    stats = os.statvfs(probe)
    return max(1, int(stats.f_bavail * stats.f_frsize * FREE_SPACE_SHARE))


class SpoolBudget:
    """A byte count with a ceiling; see the module docstring."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be 0 (no limit) or positive")
        self.max_bytes = max_bytes
        self.used = 0

    def reserve(self, size: int, *, force: bool = False) -> bool:
        """Take `size` bytes; False (nothing taken) when that would pass the ceiling.
        `force` takes them anyway: bytes already on disk from an earlier run."""
        if not force and self.max_bytes and self.used + size > self.max_bytes:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)
