"""Attendance: presence recorded as intervals, and the per-student report built from them.

A heartbeat (from the player, or from an open chat socket) extends the user's latest
interval when it comes within two heartbeat periods of it, and otherwise opens a new
one: a reconnect after a long gap is a new interval of the same attendee. A student's
minutes are the union of their intervals clipped to the session's live window, so
overlapping intervals (player and chat at once) never count twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.models import AttendanceInterval, CourseSession, Role, User

DEFAULT_PRESENT_PERCENT = CourseSettings().attendance_present_percent


@dataclass(frozen=True)
class Attendee:
    user_id: int
    username: str
    minutes: float
    present: bool


async def record_presence(
    db: AsyncSession, session_id: int, user_id: int, now: datetime, heartbeat_seconds: int
) -> AttendanceInterval:
    """Extend the user's latest interval in the session, or open a new one."""
    latest = (
        await db.scalars(
            select(AttendanceInterval)
            .where(
                AttendanceInterval.session_id == session_id,
                AttendanceInterval.user_id == user_id,
            )
            .order_by(AttendanceInterval.last_seen_at.desc(), AttendanceInterval.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    if latest is not None and now - latest.last_seen_at <= timedelta(
        seconds=2 * heartbeat_seconds
    ):
        latest.last_seen_at = max(latest.last_seen_at, now)
        return latest
    interval = AttendanceInterval(
        session_id=session_id, user_id=user_id, joined_at=now, last_seen_at=now
    )
    db.add(interval)
    await db.flush()
    return interval


def live_window(session: CourseSession, now: datetime) -> tuple[datetime, datetime] | None:
    """The time the session was actually live: started_at .. ended_at (or now)."""
    if session.started_at is None:
        return None
    end = session.ended_at or now
    return (session.started_at, max(session.started_at, end))


def union_seconds(
    intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> float:
    """Seconds covered by the intervals within [start, end], overlaps counted once."""
    clipped = sorted(
        (max(a, start), min(b, end)) for a, b in intervals if min(b, end) > max(a, start)
    )
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for a, b in clipped:
        if current is not None and a <= current[1]:
            current = (current[0], max(current[1], b))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (a, b)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


async def attendance_report(
    db: AsyncSession,
    session: CourseSession,
    now: datetime,
    *,
    present_percent: int = DEFAULT_PRESENT_PERCENT,
) -> list[Attendee]:
    """One row per student seen in the session (staff are not attendees), by username."""
    window = live_window(session, now)
    if window is None:
        return []
    rows = (
        await db.execute(
            select(
                AttendanceInterval.user_id,
                User.username,
                AttendanceInterval.joined_at,
                AttendanceInterval.last_seen_at,
            )
            .join(User, User.id == AttendanceInterval.user_id)
            .where(AttendanceInterval.session_id == session.id, User.role == Role.STUDENT)
        )
    ).all()
    spans: dict[tuple[int, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for user_id, username, joined, last_seen in rows:
        spans[(user_id, username)].append((joined, last_seen))
    live_minutes = (window[1] - window[0]).total_seconds() / 60
    needed = live_minutes * present_percent / 100
    report = []
    for (user_id, username), intervals in sorted(spans.items(), key=lambda kv: kv[0][1]):
        minutes = round(union_seconds(intervals, *window) / 60, 1)
        report.append(
            Attendee(user_id, username, minutes, live_minutes > 0 and minutes >= needed)
        )
    return report


async def total_attendance(
    db: AsyncSession,
    session: CourseSession,
    now: datetime,
    *,
    present_percent: int = DEFAULT_PRESENT_PERCENT,
) -> int:
    """Count the students present, store it in session.attendance_count, and return it."""
    report = await attendance_report(db, session, now, present_percent=present_percent)
    session.attendance_count = sum(1 for row in report if row.present)
    return session.attendance_count
