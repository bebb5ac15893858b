"""Telling the media edge, after commit, that a live session was ended by an API call, or
that stream keys stopped working."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from control.http.routing import Ctx

__all__ = ["notify_keys_revoked", "notify_session_ended"]

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


def notify_keys_revoked(ctx: Ctx, revoked: Mapping[int, Iterable[int]]) -> None:
    """Once this request commits, the observer (if any) disconnects an encoder publishing
    with one of these keys ({course_id: key ids}). A failure there is logged: the keys are
    revoked all the same, so the encoder cannot come back with them."""
    observer = ctx.state.live_observer
    changes = {course_id: frozenset(ids) for course_id, ids in revoked.items() if ids}
    if observer is None or not changes:
        return

    async def tell() -> None:
        for course_id, key_ids in changes.items():
            try:
                await observer.keys_revoked(course_id, key_ids)
            except Exception:
                log.exception("could not disconnect course %d's publisher from its revoked"
                              " keys", course_id)

    ctx.after_commit.append(tell)
