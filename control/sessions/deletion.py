"""Deleting a class session: only one that has no history, and a generated one for good.

A live or ended session is history (attendance, chat, a recording) and is kept. A session
its schedule generated would come back at the next generation, so its occurrence becomes
one of the schedule's EXDATEs, in the schedule's own wall-clock time. Files attached to it
stay, as the course's (control/resources/session_files.py).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import conflict
from control.models import Course, CourseSession, Schedule, SessionStatus
from control.models.base import utcnow
from control.notifications.announce import session_cancelled
from control.resources.session_files import keep_for_course

__all__ = ["delete_session"]


async def delete_session(db: AsyncSession, session: CourseSession) -> None:
    """Delete `session`, or raise 409 `session_has_history` for a live or ended one."""
    if session.status in (SessionStatus.LIVE, SessionStatus.ENDED):
        raise conflict(
            "session_has_history",
            f"a {session.status.value} session is kept as history; it cannot be deleted",
        )
    if session.schedule_id is not None and session.occurrence_start is not None:
        schedule = (
            await db.execute(
                select(Schedule).where(Schedule.id == session.schedule_id).with_for_update()
            )
        ).scalar_one_or_none()
        if schedule is not None:
            local = session.occurrence_start.astimezone(ZoneInfo(schedule.timezone))
            skipped = local.replace(tzinfo=None).isoformat()
            schedule.exdates = sorted({*schedule.exdates, skipped})
    course = await db.get(Course, session.course_id)
    if (course is not None and session.status == SessionStatus.SCHEDULED
            and session.is_active and session.start_time > utcnow()):
        # To its students a deleted upcoming class is a cancelled one.
        await session_cancelled(db, session, course)
    await keep_for_course(db, session.id)
    await db.delete(session)
