"""`ControlPort` over the control plane in the same process: a Database and control.*.

This is the default deployment (one `academia serve` process). Each question is one short
transaction; the media edge holds no database session between questions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from config.settings import CourseSettings
from control.database import Database
from control.errors import ApiError
from control.live_sessions import end_live, go_live
from control.models import Course
from control.models.base import utcnow
from control.publishing import PublishGrant, authorize_publish
from control.session_states import live_session
from mediaserver.control_port import (
    ControlUnavailable,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)

log = logging.getLogger(__name__)


class InProcessControl:
    """Answers the media edge's questions with control.publishing and control.live_sessions.

    `settings` is the server's [courses] section (how early a scheduled session may go
    live, how long an ad-hoc one lasts). `clock` is for tests.
    """

    def __init__(
        self,
        database: Database,
        settings: CourseSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        try:
            # A write: a granted key records when it was last used.
            async with self._database.transaction(write=True) as db:
                answer = await authorize_publish(db, app, key, now=self._clock())
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while checking a stream key: {exc}") from exc
        if isinstance(answer, PublishGrant):
            return PublishAllowed(course_id=answer.course_id)
        return PublishDenied(reason=str(answer.reason))

    async def stream_started(self, course_id: int) -> int:
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

    async def stream_ended(self, course_id: int) -> None:
        try:
            async with self._database.transaction(write=True) as db:
                course = await db.get(Course, course_id)
                if course is None:
                    return
                await end_live(db, course, now=self._clock())
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while ending live: {exc}") from exc
