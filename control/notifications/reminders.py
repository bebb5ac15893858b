"""Session reminders: `reminder_minutes` before a class, its students and teacher are told.
Each worker looks now and then; the reminder's unique key (events.py) makes it once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Course, CourseSession, SessionStatus
from control.notifications.announce import session_reminder

__all__ = ["remind_due"]


async def remind_due(db: AsyncSession, *, now: datetime, minutes: int) -> int:
    """Remind every active scheduled class starting within `minutes`; how many were new."""
    rows = (
        await db.execute(
            select(CourseSession, Course)
            .join(Course, Course.id == CourseSession.course_id)
            .where(
                CourseSession.status == SessionStatus.SCHEDULED,
                CourseSession.is_active.is_(True),
                Course.is_active.is_(True),
                CourseSession.start_time > now,
                CourseSession.start_time <= now + timedelta(minutes=minutes),
            )
            .order_by(CourseSession.start_time, CourseSession.id)
        )
    ).all()
    made = 0
    for session, course in rows:
        made += await session_reminder(db, session, course)
    return made
