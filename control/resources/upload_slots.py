"""How many uploads one person may have in progress at once, per process.

Each upload in progress may hold up to `resource_max_mb` of the node's disk (the spool)
and a connection for as long as the client takes to send it: without a bound one
account (a careless script, a stolen teacher's token) could fill the disk with slow
uploads. The bound is per process: several control processes each give their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from control.errors import ApiError

__all__ = ["UPLOADS_AT_ONCE", "UploadSlots"]

UPLOADS_AT_ONCE = 3


class UploadSlots:
    """Counts each person's uploads in progress; a fourth at once is refused (429)."""

    def __init__(self, per_person: int = UPLOADS_AT_ONCE) -> None:
        self.per_person = per_person
        self._held: dict[int, int] = {}

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        held = self._held.get(user_id, 0)
        if held >= self.per_person:
            raise ApiError(429, "too_many_uploads",
                           f"at most {self.per_person} uploads at once: wait for one to end")
        self._held[user_id] = held + 1
        try:
            yield
        finally:
            left = self._held[user_id] - 1
            if left:
                self._held[user_id] = left
            else:
                del self._held[user_id]
