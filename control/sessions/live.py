"""Going live and ending live: what happens when a teacher's broadcast starts or stops.

These are plain functions on a database session so that both the HTTP API and the media
server (when a stream arrives or drops) can call them; they know nothing of HTTP. The
caller owns the transaction; an ApiError raised here (409) means nothing should be saved.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.db.course_locks import lock_course
from control.errors import conflict
from control.models import Course, CourseSession, SessionStatus
from control.sessions.attendance import DEFAULT_PRESENT_PERCENT, total_attendance
from control.sessions.states import live_session, transition


async def current_window_session(
    db: AsyncSession, course: Course, *, now: datetime, early_start_minutes: int
) -> CourseSession | None:
    """The scheduled session whose window holds `now`: start - early start <= now < end."""
    early = timedelta(minutes=early_start_minutes)
    return (
        await db.scalars(
            select(CourseSession)
            .where(
                CourseSession.course_id == course.id,
                CourseSession.status == SessionStatus.SCHEDULED,
                CourseSession.start_time <= now + early,
                CourseSession.end_time > now,
            )
            .order_by(CourseSession.start_time, CourseSession.id)
        )
    ).first()


async def go_live(
    db: AsyncSession, course: Course, *, now: datetime, settings: CourseSettings
) -> CourseSession:
    """Start the course's broadcast and return the session that is now live.

    Picks the scheduled session whose window is now (it may start up to
    `early_start_minutes` early), else creates an ad-hoc session lasting at most
    `session_duration_limit` minutes. 409 "already_live" when the course is live already.
    `settings` is the server's [courses] section (settings.courses).
    """
    # Serialises go-live/end-live per course (control.db.course_locks).
    await lock_course(db, course.id)
    current = await live_session(db, course.id)
    if current is not None:
        raise conflict(
            "already_live",
            f"course {course.id} is already live with session {current.id}",
            session_id=current.id,
        )
    session = await current_window_session(
        db, course, now=now, early_start_minutes=settings.early_start_minutes
    )
    if session is None:
        session = CourseSession(
            course_id=course.id,
            title=f"{course.title} (live)"[:200],
            description="",
            start_time=now,
            end_time=now + timedelta(minutes=settings.session_duration_limit),
            status=SessionStatus.SCHEDULED,
        )
        db.add(session)
        await db.flush()
    await transition(db, session, course, SessionStatus.LIVE, now=now)
    return session


async def end_live(
    db: AsyncSession, course: Course, *, now: datetime,
    present_percent: int = DEFAULT_PRESENT_PERCENT,
) -> CourseSession | None:
    """End the course's live session and return it; None when nothing was live. Its
    attendance is totalled (students present at `present_percent` of the class)."""
    # Serialises go-live/end-live per course (control.db.course_locks).
    await lock_course(db, course.id)
    session = await live_session(db, course.id)
    if session is None:
        if course.is_live:
            # Heal a stale flag (nothing is live, whatever the course row says).
            course.is_live = False
        return None
    await move_session(db, session, course, SessionStatus.ENDED, now=now,
                       present_percent=present_percent)
    return session


async def end_live_session(
    db: AsyncSession, course: Course, session_id: int, *, now: datetime,
    present_percent: int = DEFAULT_PRESENT_PERCENT,
) -> CourseSession | None:
    """End the course's live session if it is `session_id`; None when it is not (it ended
    already and the course may have gone live again since: that class is not this
    caller's to end)."""
    await lock_course(db, course.id)
    session = await live_session(db, course.id)
    if session is None or session.id != session_id:
        return None
    await move_session(db, session, course, SessionStatus.ENDED, now=now,
                       present_percent=present_percent)
    return session


async def move_session(
    db: AsyncSession, session: CourseSession, course: Course, target: SessionStatus, *,
    now: datetime, present_percent: int = DEFAULT_PRESENT_PERCENT,
) -> bool:
    """Move `session` to `target` (control.sessions.states rules); when that ends a class
    (it leaves live, ended or cancelled), total its attendance. True when it was live."""
    was_live = session.status == SessionStatus.LIVE
    await transition(db, session, course, target, now=now)
    if was_live:
        await total_attendance(db, session, now, present_percent=present_percent)
    return was_live
