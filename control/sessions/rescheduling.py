"""Moving a scheduled class to other times: only before it happens, never onto another of
its teacher's classes, and its students are told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import conflict
from control.models import Course, CourseSession, SessionStatus
from control.notifications.announce import session_moved
from control.scheduling.double_booking import refuse_clash
from control.scheduling.recurrence import Occurrence

__all__ = ["move_times", "refuse_unless_scheduled"]


@dataclass(frozen=True)
class _Times:
    start_time: datetime
    end_time: datetime


def refuse_unless_scheduled(session: CourseSession) -> None:
    if session.status != SessionStatus.SCHEDULED:
        raise conflict(
            "session_not_scheduled",
            f"only a scheduled session can be moved; this one is {session.status.value}",
        )


async def move_times(
    db: AsyncSession, session: CourseSession, course: Course, start: datetime, end: datetime
) -> None:
    """Move `session` to [start, end) (checked against the duration limit by the caller),
    or raise 409 session_not_scheduled / schedule_conflict and change nothing."""
    refuse_unless_scheduled(session)
    await refuse_clash(
        db,
        teacher_id=course.teacher_id,
        candidate=[Occurrence(start=start, end=end)],
        exclude_session_id=session.id,
    )
    before = _Times(session.start_time, session.end_time)
    session.start_time = start.astimezone(UTC)
    session.end_time = end.astimezone(UTC)
    await db.flush()
    await session_moved(db, session, course, before)
