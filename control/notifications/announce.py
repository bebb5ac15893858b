"""What each change in the domain announces, and to whom. The domain's one place for each
change calls these (the enrolment and session state machines, moving a session, a
schedule's new times, a recording ready), inside its own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Course, CourseSession, Enrollment, EnrollmentStatus, Schedule
from control.notifications.audience import active_students
from control.notifications.events import announce, iso
from control.notifications.kinds import EventKind

__all__ = [
    "enrolment_changed",
    "recording_ready",
    "schedule_changed",
    "schedule_removed",
    "session_cancelled",
    "session_live",
    "session_moved",
    "session_reminder",
]

K = EventKind
S = EnrollmentStatus


def enrolment_kind(action: str, to: S) -> EventKind | None:
    """The decision an enrolment move is, for its student; None: nothing to tell."""
    if to == S.WAITLISTED:
        return K.ENROLMENT_WAITLISTED
    by_action = {
        "approve": K.ENROLMENT_APPROVED,
        "reject": K.ENROLMENT_REJECTED,
        "promote": K.ENROLMENT_PROMOTED,
        "pay": K.ENROLMENT_PAYMENT_CONFIRMED,
        "remove": K.ENROLMENT_REMOVED,
        "withdraw": K.ENROLMENT_REMOVED,
    }
    if action in by_action:
        return by_action[action]
    if action in ("enroll", "admit"):
        return K.ENROLMENT_ACTIVE if to == S.ACTIVE else K.ENROLMENT_REQUESTED
    return None  # completed, refunded: told elsewhere (the receipt), or not at all


def _course_data(course: Course) -> dict[str, Any]:
    return {"course_id": course.id, "course_title": course.title,
            "link": f"/learn/{course.id}"}


def _session_data(course: Course, session: CourseSession) -> dict[str, Any]:
    return {**_course_data(course), "session_id": session.id,
            "session_title": session.title, "start_time": iso(session.start_time),
            "end_time": iso(session.end_time), "status": session.status.value}


async def enrolment_changed(
    db: AsyncSession, enrollment: Enrollment, previous: S | None, action: str
) -> None:
    kind = enrolment_kind(action, enrollment.status)
    course = await db.get(Course, enrollment.course_id)
    if kind is None or course is None:
        return
    data = {**_course_data(course), "enrollment_id": enrollment.id,
            "student_id": enrollment.student_id, "status": enrollment.status.value,
            "previous_status": previous.value if previous else None}
    recipients = [enrollment.student_id]
    if kind == K.ENROLMENT_REQUESTED and enrollment.status == S.REQUESTED:
        recipients.append(course.teacher_id)  # the teacher has a request to decide
    await announce(db, kind, recipients=recipients, data=data, course_id=course.id)


async def session_live(db: AsyncSession, session: CourseSession, course: Course) -> None:
    await announce(db, K.SESSION_LIVE, recipients=await active_students(db, course.id),
                   data=_session_data(course, session), course_id=course.id)


async def session_cancelled(db: AsyncSession, session: CourseSession, course: Course) -> None:
    await announce(db, K.SESSION_CANCELLED, recipients=await active_students(db, course.id),
                   data=_session_data(course, session), course_id=course.id)


async def session_moved(
    db: AsyncSession, session: CourseSession, course: Course, previous: CourseSession | Any
) -> None:
    """`previous` holds the old start_time and end_time."""
    data = {**_session_data(course, session),
            "previous_start_time": iso(previous.start_time),
            "previous_end_time": iso(previous.end_time)}
    await announce(db, K.SESSION_MOVED, recipients=await active_students(db, course.id),
                   data=data, course_id=course.id)


async def recording_ready(db: AsyncSession, session: CourseSession) -> None:
    course = await db.get(Course, session.course_id)
    if course is None:
        return
    recipients = [*await active_students(db, course.id), course.teacher_id]
    data = {**_session_data(course, session), "recording_url": session.recording_url}
    # A recording finalised again (after a restart) is not news twice.
    await announce(db, K.SESSION_RECORDING_READY, recipients=recipients, data=data,
                   course_id=course.id, dedupe_key=f"recording:{session.id}")


async def schedule_changed(db: AsyncSession, schedule: Schedule, course: Course) -> None:
    data = {**_course_data(course), "schedule_id": schedule.id,
            "session_title": schedule.title, "timezone": schedule.timezone,
            "rrule": schedule.rrule, "is_active": schedule.is_active}
    await announce(db, K.SCHEDULE_CHANGED, recipients=await active_students(db, course.id),
                   data=data, course_id=course.id)


async def schedule_removed(db: AsyncSession, schedule: Schedule, course: Course) -> None:
    """A deleted schedule took its upcoming classes with it: a change of schedule too."""
    data = {**_course_data(course), "schedule_id": schedule.id,
            "session_title": schedule.title, "timezone": schedule.timezone,
            "rrule": schedule.rrule, "is_active": False}
    await announce(db, K.SCHEDULE_CHANGED, recipients=await active_students(db, course.id),
                   data=data, course_id=course.id)


async def session_reminder(
    db: AsyncSession, session: CourseSession, course: Course
) -> bool:
    """Remind the class once per start time (a moved class is reminded again); True when
    this call made the reminder."""
    recipients = [*await active_students(db, course.id), course.teacher_id]
    key = f"reminder:{session.id}:{iso(session.start_time)}"
    made = await announce(db, K.SESSION_REMINDER, recipients=recipients,
                          data=_session_data(course, session), course_id=course.id,
                          dedupe_key=key)
    return made is not None
