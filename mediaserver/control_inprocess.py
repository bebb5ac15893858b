"""`ControlPort` over the control plane in the same process: a Database and control.*.

This is the default deployment (one `academia serve` process). Each question is one short
transaction; the media edge holds no database session between questions. Playback tokens
are checked with the same signer the API issues them with, and the token's holder is
asked again whether they may watch, so a removal takes effect within one grant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from config.settings import CourseSettings, Settings
from control.db.database import Database
from control.errors import ApiError
from control.models import Course, CourseSession, User
from control.models.base import utcnow
from control.sessions.live import end_live, go_live
from control.sessions.states import live_session
from control.streaming.playback_access import may_play, playable_kind
from control.streaming.playback_tokens import PlaybackSigner, PlaybackTokenError, signing_key
from control.streaming.stream_keys import PublishGrant, authorize_publish
from mediaserver.control_port import (
    PLAYBACK_GRANT_SECONDS,
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)

log = logging.getLogger(__name__)

class InProcessControl:
    """Answers the media edge's questions with control.streaming.stream_keys and
    control.sessions.live.

    `settings` is the server's [courses] section (how early a scheduled session may go
    live, how long an ad-hoc one lasts), or the whole Settings, from which the playback
    signer and the public URL are then taken unless given. `signer` checks playback
    tokens (without one, playback questions raise ControlUnavailable); `public_url` is
    where the API is reached, for recording URLs. `clock` is for tests.
    """

    def __init__(
        self,
        database: Database,
        settings: CourseSettings | Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        signer: PlaybackSigner | None = None,
        public_url: str | None = None,
    ) -> None:
        if isinstance(settings, Settings):
            if signer is None:
                signer = PlaybackSigner(signing_key(settings))
            if public_url is None:
                public_url = settings.public_url
            settings = settings.courses
        self._database = database
        self._settings = settings
        self._clock = clock
        self._signer = signer
        self._public_url = (public_url or "").rstrip("/")

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        try:
            # A write: a granted key records when it was last used.
            async with self._database.transaction(write=True) as db:
                answer = await authorize_publish(db, app, key, now=self._clock())
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while checking a stream key: {exc}") from exc
        if isinstance(answer, PublishGrant):
            return PublishAllowed(course_id=answer.course_id, key_id=answer.key_id)
        return PublishDenied(reason=str(answer.reason))

    async def session_goes_live(self, course_id: int) -> int:
        try:
            async with self._database.transaction(write=True) as db:
                course = await db.get(Course, course_id)
                if course is None:
                    raise ControlUnavailable(f"course {course_id} vanished before going live")
                try:
                    session = await go_live(db, course, now=self._clock(), settings=self._settings)
                except ApiError as exc:
                    if exc.code != "already_live":
                        raise ControlUnavailable(f"course {course_id}: {exc.message}") from exc
                    # The teacher pressed "start live" in the web app first (or a previous
                    # process died mid-stream): the encoder joins the session already live.
                    # The live registry, not this flag, guarantees one publisher per course.
                    current = await live_session(db, course_id)
                    if current is None:
                        raise ControlUnavailable(
                            f"course {course_id}: already live, yet no live session"
                        ) from exc
                    log.info("course %d was already live: joining session %d",
                             course_id, current.id)
                    return current.id
                return session.id
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while going live: {exc}") from exc

    async def end_session(self, course_id: int) -> None:
        try:
            async with self._database.transaction(write=True) as db:
                course = await db.get(Course, course_id)
                if course is None:
                    return
                await end_live(db, course, now=self._clock(),
                               present_percent=self._settings.attendance_present_percent)
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while ending live: {exc}") from exc

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        if self._signer is None:
            raise ControlUnavailable("no playback signing key: InProcessControl needs a signer")
        now = self._clock()
        try:
            claim = self._signer.verify(token, session_id=session_id, now=now)
        except PlaybackTokenError as exc:
            return PlaybackRefused(reason=exc.reason)
        try:
            async with self._database.transaction(write=False) as db:
                session = await db.get(CourseSession, session_id)
                if session is None:
                    # Deleted: only scheduled or cancelled sessions are, so nothing to play.
                    return PlaybackRefused(reason="not_available")
                user = None
                if claim.user_id is not None:
                    user = await db.get(User, claim.user_id)
                    if user is None:
                        return PlaybackRefused(reason="not_allowed")
                if not await may_play(db, user, session):
                    return PlaybackRefused(reason="not_allowed")
                kind = playable_kind(session)
        except SQLAlchemyError as exc:
            raise ControlUnavailable(
                f"database error while checking a playback token: {exc}"
            ) from exc
        if kind is None:
            return PlaybackRefused(reason="not_available")
        until = min(claim.expires_at, now + timedelta(seconds=PLAYBACK_GRANT_SECONDS))
        return PlaybackAllowed(
            session_id=session_id, live=kind == "live", expires_at=until.timestamp()
        )

    async def recording_ready(self, session_id: int) -> None:
        try:
            async with self._database.transaction(write=True) as db:
                session = (
                    await db.execute(
                        select(CourseSession)
                        .where(CourseSession.id == session_id)
                        .with_for_update()
                    )
                ).scalar_one_or_none()
                if session is None:
                    log.warning("recording of session %d is ready, but the session is gone",
                                session_id)
                    return
                session.recording_url = f"{self._public_url}/sessions/{session_id}/recording"
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while saving a recording: {exc}") from exc
