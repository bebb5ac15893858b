"""Which courses are being published right now, by which connection: one publisher per course.

These slots are the authority on publishers (the database's `is_live` flag says whether a
session is live, which can outlast a publisher). A slot is claimed before the control plane
is told the stream started, so two encoders racing with the same key cannot both go live,
and it is released only after the control plane was told the stream ended, so a quick
reconnect cannot overlap the previous stream's ending.

All of it runs on one event loop thread, so claim-and-check needs no lock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mediaserver.media_sink import MediaSink

__all__ = ["Publication", "PublisherSlots", "RegistryFull"]


class RegistryFull(enum.Enum):
    """Why a claim failed."""

    COURSE_BUSY = "course_busy"  # another encoder publishes into this course
    AT_CAPACITY = "at_capacity"  # the server carries its maximum number of streams


@dataclass(eq=False)
class Publication:
    """One publisher's hold on a course. Identity matters: only the holder releases it.

    `stop(reason)` disconnects the publisher, whatever its protocol: the protocol says how
    with `on_stop` once the publish is accepted (a stop that came while it was going live
    is carried out then), and withdraws it (`on_stop(None)`) when the publisher is already
    leaving, so a stop never cuts a departure's cleanup short.
    """

    course_id: int
    connection_id: int
    peer: str
    since: float = field(default_factory=time.monotonic)
    session_id: int | None = None  # set once the control plane has gone live
    key_id: int | None = None  # the stream key it was authorised with
    sink: MediaSink | None = None  # where its media goes, once live
    # Set when the class itself was ended (from the API): its publisher leaving then has
    # nothing more to end.
    class_ended: bool = False
    _stop: Callable[[str], object] | None = field(default=None, repr=False)
    _stop_reason: str | None = field(default=None, repr=False)
    _left: bool = field(default=False, repr=False)

    def on_stop(self, stop: Callable[[str], object] | None) -> None:
        if stop is None:
            self._left, self._stop = True, None
            return
        self._stop = stop
        if self._stop_reason is not None:
            stop(self._stop_reason)  # stopped before the protocol could say how

    def stop(self, reason: str) -> bool:
        """Disconnect the publisher (once); False when it is stopped or leaving already."""
        if self._left or self._stop_reason is not None:
            return False
        self._stop_reason = reason
        if self._stop is not None:
            self._stop(reason)
        return True


class PublisherSlots:
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
