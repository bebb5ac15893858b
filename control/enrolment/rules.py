"""Who gets a place in a course and in which status: access levels and the settings
that shape them, capacity, the FIFO waitlist and its promotion, prerequisites.

Capacity counts ACTIVE enrollments only. Every decision that counts seats runs with
the course row locked (control.db.course_locks) on PostgreSQL; on SQLite the single
writer lock (control.db.database) already serialises them. Callers must therefore lock
the course before calling `admission`; `promote_waitlist` takes the lock itself.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.db.course_locks import lock_course
from control.enrolment.states import Action, move
from control.errors import ApiError
from control.models import (
    AccessLevel,
    Course,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    course_prerequisites,
)

S = EnrollmentStatus


def payment_needed(course: Course, settings: CourseSettings) -> bool:
    # PAYMENT_REQUIRED (courses.payment_required): when true, a paid course admits a
    # student only once the payment webhook confirms their payment; when false, paid
    # courses are treated like public ones and nobody is asked to pay.
    return course.access_level == AccessLevel.PAID and settings.payment_required


def requested_status(
    course: Course, settings: CourseSettings, *, already_paid: bool = False
) -> S:
    """The status a student's own enrollment aims for, before capacity is considered.

    Restricted courses are checked by invite code before this is asked: a valid code is
    the teacher's consent, so it admits like an approval.
    """
    # AUTO_ENROLLMENT_ENABLED (courses.auto_enrollment_enabled): public courses (and the
    # levels that behave like public) activate at once; when false, such enrollments
    # wait as requests for the teacher's approval.
    open_status = S.ACTIVE if settings.auto_enrollment_enabled else S.REQUESTED
    level = course.access_level
    if level == AccessLevel.PRIVATE:
        # ENROLLMENT_APPROVAL_REQUIRED (courses.enrollment_approval_required): private
        # courses hold each enrollment as a request until the teacher approves it; when
        # false, private courses take students like public ones.
        return S.REQUESTED if settings.enrollment_approval_required else open_status
    if level == AccessLevel.PAID and payment_needed(course, settings):
        return S.ACTIVE if already_paid else S.PENDING_PAYMENT
    if level == AccessLevel.RESTRICTED:
        return S.ACTIVE
    return open_status


def approved_status(course: Course, settings: CourseSettings, enrollment: Enrollment) -> S:
    """Where an approved (or promoted) student goes, before capacity is considered."""
    if payment_needed(course, settings) and not enrollment.paid:
        return S.PENDING_PAYMENT
    return S.ACTIVE


async def removed_by_staff(db: AsyncSession, enrollment: Enrollment) -> bool:
    """Whether the enrollment is `removed` by someone other than the student (the
    course's teacher or an admin), as opposed to the student withdrawing.

    Both end in `removed`; the last event into it says who acted (a missing actor, whose
    account is gone, counts as staff: the stricter reading).
    """
    if enrollment.status != S.REMOVED:
        return False
    actor = await db.scalar(
        select(EnrollmentEvent.actor_id)
        .where(EnrollmentEvent.enrollment_id == enrollment.id,
               EnrollmentEvent.to_status == S.REMOVED)
        .order_by(EnrollmentEvent.id.desc())
        .limit(1)
    )
    return actor != enrollment.student_id


async def refuse_if_removed(db: AsyncSession, enrollment: Enrollment) -> None:
    """403 removed_from_course when the student asks back into a course whose staff took
    them out: removal sticks until the teacher or an admin re-admits them (enroll-student),
    whatever the student holds (an invite code, a payment kept from before)."""
    if await removed_by_staff(db, enrollment):
        raise ApiError(
            403,
            "removed_from_course",
            f"you were removed from course {enrollment.course_id}: only its teacher or an"
            " admin can admit you again",
        )


async def active_count(db: AsyncSession, course_id: int) -> int:
    found = await db.scalar(
        select(func.count(Enrollment.id)).where(
            Enrollment.course_id == course_id, Enrollment.status == S.ACTIVE
        )
    )
    return int(found or 0)


async def is_full(db: AsyncSession, course: Course) -> bool:
    return await active_count(db, course.id) >= course.capacity


async def admission(db: AsyncSession, course: Course, wanted: S) -> S:
    """`wanted`, or WAITLISTED when it would need a seat and none is free.

    A paid course that is full waitlists at once rather than asking for money it
    cannot give a seat for; the waitlist then offers the seat (pending_payment).
    """
    if wanted in (S.ACTIVE, S.PENDING_PAYMENT) and await is_full(db, course):
        return S.WAITLISTED
    return wanted


async def promote_waitlist(
    db: AsyncSession, course: Course, actor_id: int | None, settings: CourseSettings
) -> list[Enrollment]:
    """Fill free seats from the waitlist, oldest first; returns who moved.

    Call it after anything that frees a seat or adds seats (an enrollment leaving
    active, an offered seat declined, the capacity raised). An unpaid student of a
    course that needs payment is offered the seat (pending_payment, keeping their
    queue time); offers still open count against the free seats so one freed seat
    is offered to one student, not to the whole waitlist. A waitlisted student who
    already paid goes straight to active.
    """
    await lock_course(db, course.id)
    offers = await db.scalar(
        select(func.count(Enrollment.id)).where(
            Enrollment.course_id == course.id,
            Enrollment.status == S.PENDING_PAYMENT,
            Enrollment.queued_at.is_not(None),
        )
    )
    free = course.capacity - await active_count(db, course.id) - int(offers or 0)
    if free <= 0:
        return []
    waiting = (
        await db.scalars(
            select(Enrollment)
            .where(Enrollment.course_id == course.id, Enrollment.status == S.WAITLISTED)
            .order_by(Enrollment.queued_at, Enrollment.id)
            .limit(free)
        )
    ).all()
    for enrollment in waiting:
        to = approved_status(course, settings, enrollment)
        await move(
            db, enrollment, Action.PROMOTE, to, actor_id=actor_id,
            reason="promoted from the waitlist: a seat became free",
        )
    return list(waiting)


async def missing_prerequisites(db: AsyncSession, course_id: int, student_id: int) -> list[int]:
    """Prerequisite course ids the student has not COMPLETED, in id order."""
    required = (
        await db.scalars(
            select(course_prerequisites.c.prerequisite_id)
            .where(course_prerequisites.c.course_id == course_id)
            .order_by(course_prerequisites.c.prerequisite_id)
        )
    ).all()
    if not required:
        return []
    completed = set(
        (
            await db.scalars(
                select(Enrollment.course_id).where(
                    Enrollment.student_id == student_id,
                    Enrollment.course_id.in_(required),
                    Enrollment.status == S.COMPLETED,
                )
            )
        ).all()
    )
    return [c for c in required if c not in completed]


async def check_prerequisites(
    db: AsyncSession, course: Course, student_id: int, settings: CourseSettings, *, note: str = ""
) -> None:
    """403 prerequisites_missing unless the student completed every prerequisite.

    Only when courses.prerequisite_enforcement is on.
    """
    if not settings.prerequisite_enforcement:
        return
    missing = await missing_prerequisites(db, course.id, student_id)
    if missing:
        raise ApiError(
            403,
            "prerequisites_missing",
            f"course {course.id} requires completing courses {missing} first{note}",
            missing_course_ids=missing,
        )
