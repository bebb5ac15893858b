"""Enrolling: a student taking a place in a course, staff placing one, and the moves that
give a seat back.

These are the use cases; who is admitted, waitlisted or promoted is decided by
control.enrolment.rules and every status change goes through control.enrolment.states.
They take a database session (the caller owns the transaction) and raise ApiError for a
refusal, so the API, the CLI and jobs can run them alike. Anything that may take or free
a seat runs with the course row locked (control.db.course_locks): `enroll_self` locks it
itself, the others expect a course their caller loaded locked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.courses.permissions import HOLDING_STATES, can_view
from control.db.course_locks import lock_course
from control.enrolment.invite_codes import opens_hidden_course, usable_invite
from control.enrolment.rules import (
    admission,
    approved_status,
    check_prerequisites,
    promote_waitlist,
    refuse_if_removed,
    requested_status,
)
from control.enrolment.states import Action, move, require, start
from control.errors import not_found, unprocessable
from control.models import AccessLevel, Course, Enrollment, EnrollmentStatus, Role, User

S = EnrollmentStatus


@dataclass(frozen=True)
class Enrolled:
    """The enrollment after an enroll; `new_place` when this call took a place (a new
    enrollment or one enrolled again), not when it answered one already held."""

    enrollment: Enrollment
    new_place: bool
    invite_id: int | None = None  # the invite code used up, if any


async def find_enrollment(db: AsyncSession, course_id: int, student_id: int) -> Enrollment | None:
    found: Enrollment | None = await db.scalar(
        select(Enrollment).where(
            Enrollment.course_id == course_id, Enrollment.student_id == student_id
        )
    )
    return found


async def _course_to_join(
    db: AsyncSession, student: User, course_id: int, invite_code: str | None
) -> Course:
    """The course, locked; a hidden restricted course only for one of its invite codes."""
    await lock_course(db, course_id)
    course = await db.get(Course, course_id)
    if course is None:
        raise not_found("course")
    if await can_view(db, student, course):
        return course
    # A restricted course is hidden from the catalog, but a student holding an invite
    # must reach it. Without one of its codes it answers exactly like a missing course
    # (as GET does), so enrolling cannot be used to find hidden courses.
    if (
        course.is_active
        and course.access_level == AccessLevel.RESTRICTED
        and await opens_hidden_course(db, course.id, invite_code)
    ):
        return course
    raise not_found("course")


async def enroll_self(
    db: AsyncSession, student: User, course_id: int, invite_code: str | None,
    settings: CourseSettings,
) -> Enrolled:
    """A student asks for a place: the status follows the course's access level and the
    settings, then capacity (a full course waitlists). A place already held is answered
    as it is; a student the staff removed is refused (403 removed_from_course)."""
    course = await _course_to_join(db, student, course_id, invite_code)
    existing = await find_enrollment(db, course.id, student.id)
    if existing is not None and existing.status in HOLDING_STATES:
        return Enrolled(existing, new_place=False)
    if existing is not None:
        # Before the invite code is looked at, so a refused student does not use it up.
        await refuse_if_removed(db, existing)
    # Invite codes are only asked for (and only used up) on restricted courses.
    invite = None
    if course.access_level == AccessLevel.RESTRICTED:
        invite = await usable_invite(db, course.id, invite_code)
    await check_prerequisites(db, course, student.id, settings)
    wanted = requested_status(course, settings, already_paid=bool(existing and existing.paid))
    to = await admission(db, course, wanted)
    if invite is not None:
        invite.uses += 1
    if existing is None:
        enrollment = await start(
            db, course_id=course.id, student_id=student.id, to=to, actor_id=student.id,
            reason="enrolled" if invite is None else f"enrolled with invite {invite.id}",
        )
    else:
        enrollment = existing
        await move(db, enrollment, Action.ENROLL, to, actor_id=student.id,
                   reason="enrolled again")
    return Enrolled(enrollment, new_place=True, invite_id=invite.id if invite else None)


async def enroll_by_staff(
    db: AsyncSession, course: Course, student_id: int, actor: User, settings: CourseSettings
) -> Enrolled:
    """The course's teacher or an admin puts a student in (course locked by the caller):
    active, or waitlisted when full. Skips approval, payment and invites; capacity and
    prerequisites still apply. An open request or payment offer is admitted."""
    student = await db.get(User, student_id)
    if student is None or student.role != Role.STUDENT or not student.is_active:
        raise unprocessable(f"user {student_id} is not an active student")
    existing = await find_enrollment(db, course.id, student.id)
    if existing is not None and existing.status in (S.ACTIVE, S.WAITLISTED, S.COMPLETED):
        return Enrolled(existing, new_place=False)
    # Prerequisites hold for seeding too: a teacher cannot place a student in a course
    # they are not ready for (turn courses.prerequisite_enforcement off to seed freely).
    await check_prerequisites(
        db, course, student.id, settings, note=" (enroll-student enforces prerequisites too)",
    )
    to = await admission(db, course, S.ACTIVE)
    # Seeding waives payment for good: a seeded student waitlisted in a paid course is
    # promoted straight to active later, never asked to pay.
    waived = course.access_level == AccessLevel.PAID
    if existing is None:
        enrollment = await start(
            db, course_id=course.id, student_id=student.id, to=to, actor_id=actor.id,
            reason="enrolled by the teacher",
        )
        enrollment.paid = enrollment.paid or waived
        return Enrolled(enrollment, new_place=True)
    existing.paid = existing.paid or waived
    if existing.status in (S.REQUESTED, S.PENDING_PAYMENT):
        await move(db, existing, Action.ADMIT, to, actor_id=actor.id,
                   reason="admitted by the teacher")
        return Enrolled(existing, new_place=False)
    await move(db, existing, Action.ENROLL, to, actor_id=actor.id,
               reason="enrolled again by the teacher")
    return Enrolled(existing, new_place=True)


async def approve_request(
    db: AsyncSession, course: Course, enrollment: Enrollment, actor_id: int,
    settings: CourseSettings,
) -> None:
    """A request approved (course locked by the caller): active, pending payment, or
    waitlisted when the course is full."""
    require(Action.APPROVE, enrollment.status)
    wanted = approved_status(course, settings, enrollment)
    to = await admission(db, course, wanted)
    await move(db, enrollment, Action.APPROVE, to, actor_id=actor_id, reason="approved")


async def give_up_place(
    db: AsyncSession, course: Course, enrollment: Enrollment, action: Action, to: S, *,
    actor_id: int, reason: str, settings: CourseSettings,
) -> None:
    """The enrollment leaves its place (removed, completed; course locked by the caller)
    and the seat goes to the waitlist."""
    await move(db, enrollment, action, to, actor_id=actor_id, reason=reason)
    await promote_waitlist(db, course, actor_id, settings)
