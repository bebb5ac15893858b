"""The control plane's answers to the media edge's questions, whoever carries them.

A media node asks five things (mediaserver/control_port.py): may this key publish, this
course goes live, its broadcast is over, may this token play, this recording is ready.
The rules live here once: the in-process adapter (mediaserver/control_inprocess.py) and
the internal HTTP API that remote media nodes call (control/node_api/) both ask
`EdgeQuestions` and only translate its answers into their own shapes.

Each question is one short transaction. Whatever stops an answer (the database is down,
the course vanished mid-question) is `CannotAnswer`: the edge tells its encoder to try
again later, never that its key is bad.

In a cluster a question may name the media node asking (`node`). Going live then records
that node as the session's carrier at once (a reconnect to another node takes the session
up); an end from a node that no longer carries the session, or naming a session that is
no longer the course's live one, ends nothing: a late or retried end from a node the
class has moved away from must not end the class another node carries now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.db.course_locks import lock_course
from control.db.database import Database
from control.errors import ApiError
from control.models import Course, CourseSession, User
from control.models.base import utcnow
from control.nodes.registry import carrier_of, take_up
from control.notifications.announce import recording_ready
from control.sessions.live import end_live, end_live_session, go_live
from control.sessions.states import live_session
from control.streaming.playback_access import may_play, playable_kind
from control.streaming.playback_tokens import PlaybackSigner, PlaybackTokenError
from control.streaming.stream_keys import PublishGrant, PublishRefused, authorize_publish

__all__ = [
    "PLAYBACK_GRANT_SECONDS",
    "CannotAnswer",
    "EdgeQuestions",
    "EndOutcome",
    "PlaybackDenied",
    "PlaybackGrant",
]

log = logging.getLogger(__name__)

# How long a playback grant may be reused before the control plane is asked again: a
# student removed from the course stops receiving segments within this time.
PLAYBACK_GRANT_SECONDS = 5.0


# What an end did: the session ended; nothing was live (or not that session); or another
# alive node carries the session now, so this node's end was ignored.
EndOutcome = Literal["ended", "not_live", "carried_elsewhere"]


class CannotAnswer(Exception):
    """No answer now (database error, a course gone mid-question): try again later."""


@dataclass(frozen=True)
class PlaybackGrant:
    session_id: int
    live: bool
    expires_at: datetime  # the grant may be cached until then, at most


@dataclass(frozen=True)
class PlaybackDenied:
    reason: str  # bad_token, expired, wrong_session, not_allowed, not_available


class EdgeQuestions:
    """See the module docstring. `signer` checks playback tokens (without one, playback
    questions cannot be answered); `public_url` is where the API is reached, for
    recording URLs; `node_dead_after` is the registry's silence that makes a node dead
    (cluster.node_dead_seconds); `clock` is for tests."""

    def __init__(
        self,
        database: Database,
        settings: CourseSettings,
        *,
        signer: PlaybackSigner | None = None,
        public_url: str = "",
        node_dead_after: timedelta = timedelta(seconds=15),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._settings = settings
        self._signer = signer
        self._public_url = public_url.rstrip("/")
        self._dead_after = node_dead_after
        self._clock = clock

    async def authorize_publish(self, app: str, key: str) -> PublishGrant | PublishRefused:
        try:
            # A write: a granted key records when it was last used.
            async with self._database.transaction(write=True) as db:
                return await authorize_publish(db, app, key, now=self._clock())
        except SQLAlchemyError as exc:
            raise CannotAnswer(f"database error while checking a stream key: {exc}") from exc

    async def session_goes_live(self, course_id: int, node: str | None = None) -> int:
        """The live session's id: a new one, or the one already live (joined). `node`,
        the media node asking, carries it from now on."""
        try:
            async with self._database.transaction(write=True) as db:
                course = await db.get(Course, course_id)
                if course is None:
                    raise CannotAnswer(f"course {course_id} vanished before going live")
                session_id = await self._go_live(db, course)
                if node:
                    # Under the course's lock (go_live took it): no orphan sweep ends the
                    # session between the join and the claim.
                    await take_up(db, name=node, session_id=session_id, now=self._clock())
                return session_id
        except SQLAlchemyError as exc:
            raise CannotAnswer(f"database error while going live: {exc}") from exc

    async def _go_live(self, db: AsyncSession, course: Course) -> int:
        course_id = course.id
        try:
            session = await go_live(db, course, now=self._clock(), settings=self._settings)
        except ApiError as exc:
            if exc.code != "already_live":
                raise CannotAnswer(f"course {course_id}: {exc.message}") from exc
            # The teacher pressed "start live" in the web app first (or a previous node
            # died mid-stream): the encoder joins the session already live. The edge's
            # publisher slots, not this flag, keep one publisher a course.
            current = await live_session(db, course_id)
            if current is None:
                raise CannotAnswer(
                    f"course {course_id}: already live, yet no live session") from exc
            log.info("course %d was already live: joining session %d", course_id, current.id)
            return current.id
        return session.id

    async def end_session(self, course_id: int, session_id: int | None = None,
                          node: str | None = None) -> EndOutcome:
        """End the course's live session (only if it is `session_id`, when given); nothing
        if none (asking twice is harmless). An end from `node` when another alive node
        carries the session is ignored."""
        now = self._clock()
        present = self._settings.attendance_present_percent
        try:
            async with self._database.transaction(write=True) as db:
                course = await db.get(Course, course_id)
                if course is None:
                    return "not_live"
                await lock_course(db, course_id)
                live = await live_session(db, course_id)
                if live is None or (session_id is not None and live.id != session_id):
                    if live is None:
                        await end_live(db, course, now=now)  # heals a stale is_live flag
                    return "not_live"
                if node:
                    carrier = await carrier_of(db, live.id, now=now,
                                               dead_after=self._dead_after)
                    if carrier is not None and carrier.name != node:
                        log.info("course %d: end of session %d from node %s ignored: node "
                                 "%s carries it now", course_id, live.id, node, carrier.name)
                        return "carried_elsewhere"
                await end_live_session(db, course, live.id, now=now, present_percent=present)
                return "ended"
        except SQLAlchemyError as exc:
            raise CannotAnswer(f"database error while ending live: {exc}") from exc

    async def authorize_playback(
        self, session_id: int, token: str
    ) -> PlaybackGrant | PlaybackDenied:
        if self._signer is None:
            raise CannotAnswer("no playback signing key to check tokens with")
        now = self._clock()
        try:
            claim = self._signer.verify(token, session_id=session_id, now=now)
        except PlaybackTokenError as exc:
            return PlaybackDenied(exc.reason)
        try:
            async with self._database.transaction(write=False) as db:
                session = await db.get(CourseSession, session_id)
                if session is None:
                    # Deleted: only scheduled or cancelled sessions are, so nothing to play.
                    return PlaybackDenied("not_available")
                user = None
                if claim.user_id is not None:
                    user = await db.get(User, claim.user_id)
                    if user is None:
                        return PlaybackDenied("not_allowed")
                if not await may_play(db, user, session):
                    return PlaybackDenied("not_allowed")
                kind = playable_kind(session)
        except SQLAlchemyError as exc:
            raise CannotAnswer(f"database error while checking a playback token: {exc}") from exc
        if kind is None:
            return PlaybackDenied("not_available")
        until = min(claim.expires_at, now + timedelta(seconds=PLAYBACK_GRANT_SECONDS))
        return PlaybackGrant(session_id=session_id, live=kind == "live", expires_at=until)

    async def recording_ready(self, session_id: int) -> None:
        """Set the session's recording_url (a session deleted meanwhile is let go)."""
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
                await db.flush()
                # The class's students and teacher are told once (a recording finalised
                # again after a restart is not announced twice).
                await recording_ready(db, session)
        except SQLAlchemyError as exc:
            raise CannotAnswer(f"database error while saving a recording: {exc}") from exc
