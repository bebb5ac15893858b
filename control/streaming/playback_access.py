"""Who may play a session, and what there is to play: asked when a playback token is
issued (GET /sessions/{id}/playback) and again each time the media edge checks one, so a
student removed from a course loses playback even with a token still in hand.
"""

from __future__ import annotations

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

PlaybackKind = Literal["live", "recording"]

__all__ = ["PlaybackKind", "may_play", "playable_kind"]


async def may_play(db: AsyncSession, user: User | None, session: CourseSession) -> bool:
    """Admins and the course's teacher always; otherwise, for a session that is neither
    cancelled nor switched off in an active course: anyone when the course is public,
    else students with an active enrollment."""
    course = await db.get(Course, session.course_id)
    if course is None:
        return False
    if user is not None and not user.is_active:
        return False
    if is_staff(user, course):
        return True
    if (
        session.status == SessionStatus.CANCELLED
        or not session.is_active
        or not course.is_active
    ):
        return False
    if course.access_level == AccessLevel.PUBLIC:
        return True
    if user is None:
        return False
    enrolled = await db.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id,
            Enrollment.student_id == user.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
    )
    return enrolled is not None


def playable_kind(session: CourseSession) -> PlaybackKind | None:
    """"live" while the session is live, "recording" once it has one, else None."""
    if session.status == SessionStatus.LIVE:
        return "live"
    if session.recording_url:
        return "recording"
    return None
