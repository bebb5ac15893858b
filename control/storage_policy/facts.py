"""The database's side of a storage listing: which sessions are live, and each stored
recording's course, times and retention, for the report and the policy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Course, CourseSession, SessionStatus

__all__ = ["SessionFacts", "live_session_ids", "session_facts"]


@dataclass(frozen=True)
class SessionFacts:
    session_id: int
    course_id: int
    course_title: str
    title: str
    status: SessionStatus
    started_at: datetime
    ended_at: datetime | None
    retention_days: int | None


async def live_session_ids(db: AsyncSession) -> frozenset[int]:
    rows = await db.scalars(select(CourseSession.id).where(
        CourseSession.status == SessionStatus.LIVE))
    return frozenset(rows.all())


async def session_facts(db: AsyncSession, session_ids: Iterable[int]) -> dict[int, SessionFacts]:
    """Facts of the sessions named; a session storage holds but the database no longer
    knows (deleted meanwhile) is absent."""
    wanted = sorted(set(session_ids))
    found: dict[int, SessionFacts] = {}
    # Chunks keep the IN list within every driver's parameter limit.
    for start in range(0, len(wanted), 500):
        rows = await db.execute(
            select(CourseSession.id, CourseSession.course_id, Course.title,
                   CourseSession.title, CourseSession.status, CourseSession.started_at,
                   CourseSession.start_time, CourseSession.ended_at, Course.retention_days)
            .join(Course, Course.id == CourseSession.course_id)
            .where(CourseSession.id.in_(wanted[start:start + 500])))
        for (sid, course_id, course_title, title, status, started_at, start_time, ended_at,
             retention) in rows.all():
            found[sid] = SessionFacts(sid, course_id, course_title, title, status,
                                      started_at or start_time, ended_at, retention)
    return found
