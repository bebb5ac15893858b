"""Who may read and who may post in a session's chat, by the course's chat mode.

public: anyone who may watch the session (control.streaming.playback_access) reads;
signed-in watchers post. private: the course's staff and its actively enrolled students.
disabled: nobody. Refusals are ApiErrors: before the upgrade they are HTTP errors.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.courses.permissions import can_view, is_staff
from control.errors import ApiError, conflict, forbidden, not_found, unauthorized
from control.models import ChatMode, Course, CourseSession, Enrollment, EnrollmentStatus, User
from control.streaming.playback_access import Refusal, playback_refusal

ChatRight = Literal["read", "post"]


async def chat_right(
    db: AsyncSession, user: User | None, session: CourseSession, course: Course
) -> ChatRight:
    if user is not None and not user.is_active:
        raise unauthorized("this account is deactivated")
    if not await can_view(db, user, course):
        raise not_found("session")
    if course.chat_mode == ChatMode.DISABLED:
        raise conflict("chat_disabled", "chat is disabled for this course")
    if is_staff(user, course):
        return "post"
    refusal = await playback_refusal(db, user, session)
    if refusal is not None:
        if user is None:
            raise unauthorized()
        if refusal == Refusal.OUTSIDE_ACCESS_WINDOW:
            raise ApiError(403, refusal.value, refusal.message)
        raise forbidden("you may not watch this session")
    if course.chat_mode == ChatMode.PUBLIC:
        return "read" if user is None else "post"
    if user is None:
        raise unauthorized()
    enrolled = await db.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id,
            Enrollment.student_id == user.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
    )
    if enrolled is None:
        raise forbidden("this course's chat is for its enrolled students")
    return "post"
