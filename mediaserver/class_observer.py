"""What the API's `LiveObserver` (control/sessions/live_observer.py) reaches on this node.

A small facade, so the API sees three calls, not the media side's insides: a class ended
from the web app and keys that stopped working go to the publication lifecycle
(mediaserver/publishing.py); live-status reads the stream's input and renditions from
the session's media. In a cluster the control plane may also ask for the recording of a
class whose node died (`finalise_recording`, mediaserver/node_api.py).
"""

from __future__ import annotations

from typing import Any

from mediaserver.publishing import Publishing
from mediaserver.session_media import SessionMedia

__all__ = ["ClassObserver"]


class ClassObserver:
    """Implements control.sessions.live_observer.LiveObserver for this node."""

    def __init__(self, publishing: Publishing, media: SessionMedia) -> None:
        self._publishing = publishing
        self._media = media

    async def session_ended(self, course_id: int, session_id: int) -> None:
        await self._publishing.end_class(course_id, session_id)

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        await self._publishing.keys_revoked(course_id, key_ids)

    async def finalise_recording(self, course_id: int, session_id: int) -> None:
        await self._publishing.finalise_recording(course_id, session_id)

    async def details(self, course_id: int) -> dict[str, Any] | None:
        session_id = self._publishing.live_session(course_id)
        return self._media.details(session_id) if session_id is not None else None
