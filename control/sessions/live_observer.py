"""What the control plane tells the media edge about live classes, and asks it.

The control plane knows courses, not bytes: it never imports the media server. When one
runs in the same process, it registers a `LiveObserver` on the app (a control process of
a cluster registers one that calls the media nodes: control/nodes/node_calls.py); the API
then tells it when a class is ended from the web app (so the encoder is disconnected and
the recording finalised) and when stream keys stop working (so an encoder live on one is
disconnected), and asks it what live-status shows of the stream itself (input bitrate,
codecs, renditions). Without an observer (tests, a control-only node) these are skipped.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["LiveObserver"]


class LiveObserver(Protocol):
    async def session_ended(self, course_id: int, session_id: int) -> None:
        """The course's live session was ended from the API: stop its media."""
        ...

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        """These keys of the course no longer authorise (revoked, rotated, or their holder
        lost the course): disconnect the course's publisher if it went live with one.
        The class itself is not ended: it waits the reconnect grace period, as for a
        dropped encoder, so its teacher can come back with a good key."""
        ...

    async def details(self, course_id: int) -> dict[str, Any] | None:
        """The stream's input and renditions, while a node carries it; else None.
        Async: the node carrying it may be another process (control/nodes/node_calls.py)."""
        ...
