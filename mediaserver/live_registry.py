"""Which courses are being published right now, by which connection: one publisher per course.

The registry is the authority on publishers (the database's `is_live` flag says whether a
session is live, which can outlast a publisher). A slot is claimed before the control plane
is told the stream started, so two encoders racing with the same key cannot both go live,
and it is released only after the control plane was told the stream ended, so a quick
reconnect cannot overlap the previous stream's ending.

All of it runs on one event loop thread, so claim-and-check needs no lock.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

__all__ = ["LiveRegistry", "Publication", "RegistryFull"]


class RegistryFull(enum.Enum):
    """Why a claim failed."""

    COURSE_BUSY = "course_busy"  # another encoder publishes into this course
    AT_CAPACITY = "at_capacity"  # the server carries its maximum number of streams


@dataclass(eq=False)
class Publication:
    """One publisher's hold on a course. Identity matters: only the holder releases it."""

    course_id: int
    connection_id: int
    peer: str
    since: float = field(default_factory=time.monotonic)
    session_id: int | None = None  # set once the control plane has gone live
    key_id: int | None = None  # the stream key it was authorised with


class LiveRegistry:
    """Courses being published now. `max_streams` bounds the streams one node carries."""

    def __init__(self, max_streams: int | None = None) -> None:
        if max_streams is not None and max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, not {max_streams}")
        self.max_streams = max_streams
        self._by_course: dict[int, Publication] = {}

    def claim(
        self, course_id: int, connection_id: int, peer: str, *, key_id: int | None = None
    ) -> Publication | RegistryFull:
        """Take the course's slot, or say why not."""
        if course_id in self._by_course:
            return RegistryFull.COURSE_BUSY
        if self.max_streams is not None and len(self._by_course) >= self.max_streams:
            return RegistryFull.AT_CAPACITY
        publication = Publication(course_id, connection_id, peer, key_id=key_id)
        self._by_course[course_id] = publication
        return publication

    def release(self, publication: Publication) -> None:
        """Free the slot if `publication` still holds it (a no-op otherwise)."""
        if self._by_course.get(publication.course_id) is publication:
            del self._by_course[publication.course_id]

    def get(self, course_id: int) -> Publication | None:
        return self._by_course.get(course_id)

    def is_live(self, course_id: int) -> bool:
        return course_id in self._by_course

    def publications(self) -> list[Publication]:
        """A snapshot, oldest first."""
        return sorted(self._by_course.values(), key=lambda p: p.since)

    def __len__(self) -> int:
        return len(self._by_course)
