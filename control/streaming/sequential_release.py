"""Recordings released in order: with `sequential_release` set to a share (0.9), a
student may play a course's recording once they watched that share of the previous one
(by class time). The first recording is always open; so, since each step needs the one
before, is exactly the prefix of the course the student has worked through, plus one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Course, CourseSession, RecordingProgress, SessionStatus, User


async def previous_recording(db: AsyncSession, session: CourseSession) -> CourseSession | None:
    """The course's last recorded, active session before `session` in class order."""
    earlier = (
        (CourseSession.start_time < session.start_time)
        | ((CourseSession.start_time == session.start_time) & (CourseSession.id < session.id))
    )
    return await db.scalar(
        select(CourseSession)
        .where(CourseSession.course_id == session.course_id,
               CourseSession.status == SessionStatus.ENDED,
               CourseSession.is_active.is_(True),
               CourseSession.recording_url != "",
               earlier)
        .order_by(CourseSession.start_time.desc(), CourseSession.id.desc())
        .limit(1)
    )


async def recording_locked(
    db: AsyncSession, course: Course, session: CourseSession, user: User
) -> bool:
    """Whether `session`'s recording is still locked for `user` (see the module)."""
    if course.sequential_release is None:
        return False
    previous = await previous_recording(db, session)
    if previous is None:
        return False
    row = await db.scalar(select(RecordingProgress).where(
        RecordingProgress.session_id == previous.id, RecordingProgress.user_id == user.id))
    if row is None or row.duration_seconds <= 0:
        return True
    return row.watched_seconds < course.sequential_release * row.duration_seconds
