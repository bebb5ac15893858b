"""Bytes by kind, session and course, from a storage listing: pure, no I/O.

The kind of an object follows from its key (the media side's layout): `resources/...` are
course files; `live/{sid}/...` and everything under the recording of a session that is
live now are the live class; `recordings/{sid}/recording.mp4` and its poster are the MP4
download; the rest of `recordings/{sid}/...` (segments, playlists) is the recording. What
fits none of these (a stray key) is "other", still counted in the total.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from control.storage_policy.media_store import StoredObject

__all__ = ["KINDS", "Usage", "classify", "measure"]

KINDS = ("live", "recording", "mp4", "resources", "other")
# The MP4 download and the poster made from it at the end of the class.
_MP4_NAMES = frozenset({"recording.mp4", "poster.jpg"})
_SESSION_KEY = re.compile(r"(live|recordings)/(\d+)/(.+)")


def classify(key: str, live_sessions: frozenset[int] = frozenset()) -> tuple[str, int | None]:
    """(kind, session id or None) of one stored object."""
    if key.startswith("resources/"):
        return "resources", None
    match = _SESSION_KEY.fullmatch(key)
    if match is None:
        return "other", None
    prefix, session, rest = match.groups()
    session_id = int(session)
    if prefix == "live" or session_id in live_sessions:
        return "live", session_id
    return ("mp4" if rest in _MP4_NAMES else "recording"), session_id


def _zeros() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


@dataclass
class Usage:
    """What storage holds: totals by kind, and each session's bytes by kind."""

    by_kind: dict[str, int] = field(default_factory=_zeros)
    by_session: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def recording_bytes(self, session_id: int) -> int:
        """What deleting the session's recording frees (its live bytes are never asked)."""
        kinds = self.by_session.get(session_id, {})
        return kinds.get("recording", 0) + kinds.get("mp4", 0)


def measure(objects: Iterable[StoredObject],
            live_sessions: frozenset[int] = frozenset()) -> Usage:
    usage = Usage()
    for key, size in objects:
        kind, session_id = classify(key, live_sessions)
        usage.by_kind[kind] += size
        if session_id is not None:
            usage.by_session.setdefault(session_id, _zeros())[kind] += size
    return usage
