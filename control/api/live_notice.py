"""Telling the media edge, after commit, that a live session was ended by an API call."""

from __future__ import annotations

import logging

from control.api.routing import Ctx

__all__ = ["notify_session_ended"]

log = logging.getLogger(__name__)


def notify_session_ended(ctx: Ctx, course_id: int, session_id: int) -> None:
    """Once this request commits, the observer (if any) disconnects the encoder and
    finalises the recording. A failure there is logged: the session has ended all the same."""
    observer = ctx.state.live_observer
    if observer is None:
        return

    async def tell() -> None:
        try:
            await observer.session_ended(course_id, session_id)
        except Exception:
            log.exception("could not stop the media of session %d", session_id)

    ctx.after_commit.append(tell)
