"""The class session lifecycle: the one place a session's status may change.

    scheduled -> live -> ended
    scheduled -> cancelled
    live      -> cancelled

Every status change (the API's PATCH/PUT/cancel, going live and ending live) goes through
`transition`, which refuses illegal moves with 409 "illegal_transition" and keeps the
session's timestamps and its course's `is_live` flag in step with the new status.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import conflict
from control.models import Course, CourseSession, SessionStatus
from control.notifications.announce import session_cancelled, session_live

ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.SCHEDULED: frozenset({SessionStatus.LIVE, SessionStatus.CANCELLED}),
    SessionStatus.LIVE: frozenset({SessionStatus.ENDED, SessionStatus.CANCELLED}),
    SessionStatus.ENDED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}

# Sessions in these states occupy their teacher's time.
BUSY_STATES = (SessionStatus.SCHEDULED, SessionStatus.LIVE)


def can_transition(current: SessionStatus, target: SessionStatus) -> bool:
    return target in ALLOWED[current]


def check_transition(current: SessionStatus, target: SessionStatus) -> None:
    if not can_transition(current, target):
        allowed = sorted(s.value for s in ALLOWED[current]) or ["none"]
        raise conflict(
            "illegal_transition",
            f"a {current.value} session cannot become {target.value}"
            f" (allowed: {', '.join(allowed)})",
            current=current.value,
            target=target.value,
        )


async def live_session(db: AsyncSession, course_id: int) -> CourseSession | None:
    return (
        await db.scalars(
            select(CourseSession).where(
                CourseSession.course_id == course_id,
                CourseSession.status == SessionStatus.LIVE,
            )
        )
    ).first()


async def transition(
    db: AsyncSession,
    session: CourseSession,
    course: Course,
    target: SessionStatus,
    *,
    now: datetime,
) -> None:
    """Move `session` (of `course`) to `target`, or raise 409 and change nothing."""
    check_transition(session.status, target)
    if target == SessionStatus.LIVE:
        other = await live_session(db, course.id)
        if other is not None and other.id != session.id:
            raise conflict(
                "already_live",
                f"course {course.id} is already live with session {other.id}",
                session_id=other.id,
            )
        session.started_at = now
        course.is_live = True
    elif session.status == SessionStatus.LIVE:
        # Leaving "live" (ended or cancelled mid-class) closes the broadcast.
        session.ended_at = now
        course.is_live = False
    session.status = target
    await db.flush()
    # Students are told in this transaction's outbox: sent after commit, never awaited here.
    if target == SessionStatus.LIVE:
        await session_live(db, session, course)
    elif target == SessionStatus.CANCELLED:
        await session_cancelled(db, session, course)
