"""Watching a session: playback URLs carrying a signed token, and the recording download.

The control plane hands out URLs under {public_url}/play/...; the media server serves the
bytes behind them and checks the token with the control plane each time. Signed-out
callers get a URL only for public courses. A session the caller cannot see answers 404,
one they see but may not play 403 (not_enrolled, outside_access_window,
locked_recording: control.streaming.playback_access), one with nothing to play 409
not_available.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from control.api.schedule_or_session import load_in_course
from control.errors import ApiError, conflict, unauthorized
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import CourseSession, SessionStatus
from control.models.base import utcnow
from control.streaming.playback_access import playable_kind, playback_refusal

routes = Routes("playback")


async def _playable(ctx: Ctx) -> CourseSession:
    session, _ = await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session")
    refusal = await playback_refusal(ctx.db, ctx.user, session)
    if refusal is not None:
        if ctx.user is None:
            raise unauthorized("sign in to watch this course's sessions")
        raise ApiError(403, refusal.value, refusal.message)
    return session


def _grant(ctx: Ctx, session: CourseSession) -> dict[str, Any]:
    """A playback URL for the caller, and a download URL once there is a recording."""
    kind = playable_kind(session)
    if kind is None:
        raise conflict(
            "not_available",
            f"session {session.id} is not live and has no recording yet",
        )
    settings = ctx.state.settings
    # Whole seconds: the token keeps no more, so the answer says exactly what it holds.
    expires_at = utcnow().replace(microsecond=0) + timedelta(
        seconds=settings.streaming.playback_token_ttl_seconds
    )
    token = ctx.state.playback_signer.issue(
        session.id, ctx.user.id if ctx.user else None, expires_at
    )
    base = f"{settings.public_url}/play/{session.id}/{token}"
    grant: dict[str, Any] = {
        "url": f"{base}/master.m3u8",
        "expires_at": expires_at,
        "kind": kind,
    }
    if kind == "recording":
        grant["download_url"] = f"{base}/recording.mp4"
        # A picture from the class (absent, 404, for an audio-only one).
        grant["poster_url"] = f"{base}/poster.jpg"
    return grant


@routes.route("GET", "/sessions/{session_id}/playback", name="playback.get", public=True,
              summary="A signed playback URL for the session (live ladder or recording):"
              " staff, actively enrolled students, anyone for a public course; 403"
              " not_enrolled, 409 not_available")
async def playback(ctx: Ctx) -> Any:
    session = await _playable(ctx)
    return json(_grant(ctx, session))


@routes.route("GET", "/sessions/{session_id}/recording", name="playback.recording",
              public=True,
              summary="Redirect (302) to a signed download of the session's recording, for"
              " whoever may play it; 409 not_available until the session ended with one")
async def recording(ctx: Ctx) -> Any:
    session = await _playable(ctx)
    if session.status != SessionStatus.ENDED or not session.recording_url:
        raise conflict(
            "not_available", f"session {session.id} has no recording to download yet"
        )
    grant = _grant(ctx, session)
    return web.Response(
        status=302,
        headers={"Location": grant["download_url"], "Cache-Control": "no-store"},
    )
