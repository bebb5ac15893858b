"""Who may see a course's resources: exactly who may see its content. A course's own
files follow the course (control.streaming.playback_access.course_content_refusal); a
session's files follow the session as its recording does (playback_refusal: a cancelled
class, the course's term, recordings released in order). Only staff add and remove."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError
from control.models import Course, CourseResource, CourseSession, User
from control.streaming.playback_access import (
    Refusal,
    course_content_refusal,
    playback_refusal,
)

__all__ = ["refused", "resource_refusal"]


async def resource_refusal(db: AsyncSession, user: User | None, course: Course,
                           session: CourseSession | None) -> Refusal | None:
    """None when `user` may see the files of `course` (`session`'s, when given)."""
    if session is not None:
        return await playback_refusal(db, user, session)
    return await course_content_refusal(db, user, course)


def refused(refusal: Refusal, user: User | None) -> ApiError:
    if user is None:
        return ApiError(401, "unauthorized", "sign in to see this course's files")
    return ApiError(403, refusal.value, refusal.message)


async def may_see(db: AsyncSession, user: User | None, resource: CourseResource) -> bool:
    course = await db.get(Course, resource.course_id)
    if course is None:
        return False
    session = (await db.get(CourseSession, resource.session_id)
               if resource.session_id is not None else None)
    if resource.session_id is not None and session is None:
        return False
    return await resource_refusal(db, user, course, session) is None
