"""Which classes a feed holds: a student's courses, a teacher's own, or one public course."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.calendars.feed import CourseClasses
from control.models import (
    AccessLevel,
    Course,
    CourseSession,
    Enrollment,
    EnrollmentStatus,
    Schedule,
    User,
)


async def classes_of(db: AsyncSession, courses: Sequence[Course]) -> list[CourseClasses]:
    ids = [c.id for c in courses]
    if not ids:
        return []
    schedules = (await db.scalars(
        select(Schedule).where(Schedule.course_id.in_(ids)).order_by(Schedule.id)
    )).all()
    sessions = (await db.scalars(
        select(CourseSession).where(CourseSession.course_id.in_(ids))
        .order_by(CourseSession.start_time, CourseSession.id)
    )).all()
    return [
        CourseClasses(
            course,
            [s for s in schedules if s.course_id == course.id],
            [s for s in sessions if s.course_id == course.id],
        )
        for course in courses
    ]


async def courses_for(db: AsyncSession, user: User) -> list[Course]:
    """Active courses the person teaches or is actively enrolled in (completed too: the
    classes they took stay in their calendar)."""
    enrolled = select(Enrollment.course_id).where(
        Enrollment.student_id == user.id,
        Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED]),
    )
    return list((await db.scalars(
        select(Course)
        .where(Course.is_active.is_(True),
               or_(Course.teacher_id == user.id, Course.id.in_(enrolled)))
        .order_by(Course.id)
    )).all())


def is_public(course: Course) -> bool:
    return course.is_active and course.access_level == AccessLevel.PUBLIC
