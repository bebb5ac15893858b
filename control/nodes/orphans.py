"""Live classes no media node carries any more: the control plane's reconnect grace.

A media node that dies mid-class leaves its session live: the encoder may reconnect to
another node, whose go-live takes the session up (control/nodes/registry.py `take_up`).
How long it may take is the control plane's to say, not the dead node's memory: a
session is orphaned once every node that claims it is dead and the last of them was
heard from more than `reconnect_grace_seconds` ago. Sessions no node ever claimed (the
single-process server, which has no registry) are never orphaned.

`end_orphan` re-checks under the course's lock, so a node taking the session up at the
same moment either comes first (the session is carried again, nothing ends) or finds the
class over (its encoder starts a new session).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.db.course_locks import lock_course
from control.models import Course, CourseSession, MediaNodeRecord, MediaNodeSession, SessionStatus
from control.nodes.registry import is_alive
from control.sessions.attendance import DEFAULT_PRESENT_PERCENT
from control.sessions.live import end_live_session

__all__ = ["Orphan", "end_orphan", "orphaned_sessions"]


@dataclass(frozen=True)
class Orphan:
    session_id: int
    course_id: int


async def _last_heard(db: AsyncSession, session_ids: list[int] | None = None
                      ) -> list[tuple[int, int, datetime]]:
    """Live sessions some node claims: id, course, when its claimants were last heard."""
    query = (
        select(CourseSession.id, CourseSession.course_id, func.max(MediaNodeRecord.last_seen))
        .join(MediaNodeSession, MediaNodeSession.session_id == CourseSession.id)
        .join(MediaNodeRecord, MediaNodeRecord.id == MediaNodeSession.node_id)
        .where(CourseSession.status == SessionStatus.LIVE)
        .group_by(CourseSession.id, CourseSession.course_id)
        .order_by(CourseSession.id)
    )
    if session_ids is not None:
        query = query.where(CourseSession.id.in_(session_ids))
    return [(sid, cid, last) for sid, cid, last in await db.execute(query)]


def _orphaned(last_heard: datetime, *, now: datetime, dead_after: timedelta,
              grace: timedelta) -> bool:
    return (not is_alive(last_heard, now=now, dead_after=dead_after)
            and now - last_heard > grace)


async def orphaned_sessions(db: AsyncSession, *, now: datetime, dead_after: timedelta,
                            grace: timedelta) -> list[Orphan]:
    """Live sessions whose claimants are all dead, the last heard over `grace` ago."""
    return [Orphan(sid, cid) for sid, cid, last in await _last_heard(db)
            if _orphaned(last, now=now, dead_after=dead_after, grace=grace)]


async def end_orphan(db: AsyncSession, orphan: Orphan, *, now: datetime,
                     dead_after: timedelta, grace: timedelta,
                     present_percent: int = DEFAULT_PRESENT_PERCENT) -> bool:
    """End the orphaned session if it still is one (checked under the course's lock);
    whether it ended here (another control process may have been first)."""
    course = await db.get(Course, orphan.course_id)
    if course is None:
        return False
    await lock_course(db, course.id)
    rows = await _last_heard(db, [orphan.session_id])
    if not rows or not _orphaned(rows[0][2], now=now, dead_after=dead_after, grace=grace):
        return False
    ended = await end_live_session(db, course, orphan.session_id, now=now,
                                   present_percent=present_percent)
    return ended is not None
