"""Who may see and who may manage a course: the one place these rules live.

A course that someone may not see answers 404 (its existence is private); one they
may see but not manage answers 403.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.db.course_locks import lock_course
from control.errors import forbidden, not_found
from control.models import AccessLevel, Course, Enrollment, EnrollmentStatus, Role, User

# An enrollment in one of these states lets a student see a course that is hidden
# from the catalog (restricted) or no longer active.
HOLDING_STATES = (
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.COMPLETED,
    EnrollmentStatus.REQUESTED,
    EnrollmentStatus.PENDING_PAYMENT,
    EnrollmentStatus.WAITLISTED,
)


def is_staff(user: User | None, course: Course) -> bool:
    # Ownership alone is not enough: a teacher demoted to student keeps `teacher_id` on
    # their courses until an admin hands them on, but none of the powers.
    if user is None:
        return False
    return user.role == Role.ADMIN or (user.role == Role.TEACHER and course.teacher_id == user.id)


def teaches_filter(user: User) -> ColumnElement[bool]:
    """A WHERE clause for "the course is one `user` teaches now" (role and ownership)."""
    if user.role != Role.TEACHER:
        return false()
    return Course.teacher_id == user.id


def _enrolled(user_id: int) -> ColumnElement[bool]:
    return exists().where(
        Enrollment.course_id == Course.id,
        Enrollment.student_id == user_id,
        Enrollment.status.in_(HOLDING_STATES),
    )


def visibility_filter(user: User | None) -> ColumnElement[bool] | None:
    """A WHERE clause limiting courses to those `user` sees in lists; None for all."""
    catalog = and_(Course.is_active.is_(True), Course.access_level != AccessLevel.RESTRICTED)
    if user is None:
        return catalog
    if user.role == Role.ADMIN:
        return None
    if user.role == Role.TEACHER:
        return teaches_filter(user)
    # is_active is factored out so SQLite walks the (is_active, title) index and stops
    # after a page, instead of scanning every course twice for an OR of two conditions.
    return and_(
        Course.is_active.is_(True),
        or_(Course.access_level != AccessLevel.RESTRICTED, _enrolled(user.id)),
    )


async def can_view(db: AsyncSession, user: User | None, course: Course) -> bool:
    if is_staff(user, course):
        return True
    if course.is_active and course.access_level != AccessLevel.RESTRICTED:
        return True
    if user is None or not course.is_active:
        return False
    found = await db.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id,
            Enrollment.student_id == user.id,
            Enrollment.status.in_(HOLDING_STATES),
        )
    )
    return found is not None


async def visible_course(
    db: AsyncSession, user: User | None, course_id: int, *, lock: bool = False
) -> Course:
    if lock:
        # Serialises enrollment, live and chat decisions per course (control.db.course_locks).
        await lock_course(db, course_id)
    course = (await db.execute(select(Course).where(Course.id == course_id))).scalar_one_or_none()
    if course is None or not await can_view(db, user, course):
        raise not_found("course")
    return course


def require_staff(user: User, course: Course) -> None:
    if not is_staff(user, course):
        raise forbidden("only the course's teacher or an admin may do this")


async def managed_course(
    db: AsyncSession, user: User, course_id: int, *, lock: bool = False
) -> Course:
    """The course, if `user` is its teacher or an admin: else 404 or 403."""
    course = await visible_course(db, user, course_id, lock=lock)
    require_staff(user, course)
    return course
