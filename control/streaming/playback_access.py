"""Who may play a session, and what there is to play: asked when a playback token is
issued (GET /sessions/{id}/playback) and again each time the media edge checks one, so a
student removed from a course loses playback even with a token still in hand.

A refusal says why (`Refusal`), so each caller can answer with the same clear code:
not_enrolled, outside_access_window (the course's term, `course_terms.py`), and
locked_recording (recordings released in order, `sequential_release.py`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.courses.permissions import is_staff
from control.models import (
    AccessLevel,
    Course,
    CourseSession,
    Enrollment,
    EnrollmentStatus,
    SessionStatus,
    User,
)
from control.models.base import utcnow
from control.streaming.course_terms import within_term
from control.streaming.sequential_release import recording_locked

PlaybackKind = Literal["live", "recording"]

__all__ = [
    "PlaybackKind",
    "Refusal",
    "course_content_refusal",
    "may_play",
    "playable_kind",
    "playback_refusal",
]


class Refusal(enum.StrEnum):
    """Why someone may not play a session; the value is the API's error code."""

    NOT_ENROLLED = "not_enrolled"
    OUTSIDE_ACCESS_WINDOW = "outside_access_window"
    LOCKED_RECORDING = "locked_recording"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Refusal.NOT_ENROLLED:
        "only students actively enrolled in this course (and its staff) may watch it",
    Refusal.OUTSIDE_ACCESS_WINDOW:
        "this course is open to its students only between its access dates",
    Refusal.LOCKED_RECORDING:
        "this recording opens once you have watched enough of the previous one",
}


async def playback_refusal(
    db: AsyncSession, user: User | None, session: CourseSession, *,
    now: datetime | None = None,
) -> Refusal | None:
    """None when `user` may play `session`, else why not.

    Admins and the course's teacher always may; otherwise, for a session that is neither
    cancelled nor switched off in an active course: anyone when the course is public, else
    students with an active enrollment, within the course's term, and (for a recording of
    a course releasing them in order) once the previous recording is watched enough."""
    course = await db.get(Course, session.course_id)
    if course is None:
        return Refusal.NOT_ENROLLED
    if (
        not is_staff(user, course)
        and (session.status == SessionStatus.CANCELLED or not session.is_active)
    ):
        return Refusal.NOT_ENROLLED
    refusal = await course_content_refusal(db, user, course, now=now)
    if refusal is not None or user is None or is_staff(user, course):
        return refusal
    if (
        course.access_level != AccessLevel.PUBLIC
        and playable_kind(session) == "recording"
        and await recording_locked(db, course, session, user)
    ):
        return Refusal.LOCKED_RECORDING
    return None


async def course_content_refusal(
    db: AsyncSession, user: User | None, course: Course, *, now: datetime | None = None,
) -> Refusal | None:
    """None when `user` may see the course's content (its classes, recordings, files),
    else why not: staff always; in an active course, anyone when it is public, else
    students with an active enrollment within the course's term."""
    if user is not None and not user.is_active:
        return Refusal.NOT_ENROLLED
    if is_staff(user, course):
        return None
    if not course.is_active:
        return Refusal.NOT_ENROLLED
    if course.access_level == AccessLevel.PUBLIC:
        return None
    if user is None:
        return Refusal.NOT_ENROLLED
    enrolled = await db.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id,
            Enrollment.student_id == user.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
    )
    if enrolled is None:
        return Refusal.NOT_ENROLLED
    if not within_term(course, now or utcnow()):
        return Refusal.OUTSIDE_ACCESS_WINDOW
    return None


async def may_play(db: AsyncSession, user: User | None, session: CourseSession) -> bool:
    """Whether `user` may play `session` (see `playback_refusal` for the rules)."""
    return await playback_refusal(db, user, session) is None


def playable_kind(session: CourseSession) -> PlaybackKind | None:
    """"live" while the session is live, "recording" once it has one, else None."""
    if session.status == SessionStatus.LIVE:
        return "live"
    if session.recording_url:
        return "recording"
    return None
