"""A course's completion per student: each class that took place counts as done when the
student attended it live (control.sessions.attendance: present) or watched its recording
to the set share (control.progress.watching)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import (
    Course,
    CourseSession,
    Enrollment,
    RecordingProgress,
    SessionStatus,
    User,
)
from control.progress.watch_report import COUNTED
from control.sessions.attendance import attendance_report


@dataclass(frozen=True)
class SessionMark:
    session_id: int
    attended: bool
    watched_share: float
    done: bool


@dataclass(frozen=True)
class StudentCompletion:
    user_id: int
    username: str
    display_name: str
    sessions: list[SessionMark]

    @property
    def done(self) -> int:
        return sum(1 for mark in self.sessions if mark.done)

    @property
    def percent(self) -> float:
        if not self.sessions:
            return 0.0
        return round(100 * self.done / len(self.sessions), 1)


async def held_sessions(db: AsyncSession, course_id: int) -> list[CourseSession]:
    """The classes that took place (ended), in order: what completion counts."""
    return list((await db.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course_id,
               CourseSession.status == SessionStatus.ENDED,
               CourseSession.is_active.is_(True))
        .order_by(CourseSession.start_time, CourseSession.id)
    )).all())


async def course_completion(
    db: AsyncSession, course: Course, now: datetime, *, present_percent: int,
    watched_percent: int,
) -> list[StudentCompletion]:
    """One row per enrolled (active or completed) student, by username."""
    students = (await db.execute(
        select(User.id, User.username, User.display_name)
        .join(Enrollment, Enrollment.student_id == User.id)
        .where(Enrollment.course_id == course.id, Enrollment.status.in_(COUNTED))
        .order_by(User.username)
    )).all()
    sessions = await held_sessions(db, course.id)
    present: dict[int, set[int]] = {}
    for session in sessions:
        rows = await attendance_report(db, session, now, present_percent=present_percent)
        present[session.id] = {row.user_id for row in rows if row.present}
    shares: dict[tuple[int, int], float] = {}
    if sessions:
        for row in (await db.scalars(select(RecordingProgress).where(
                RecordingProgress.session_id.in_([s.id for s in sessions])))).all():
            if row.duration_seconds > 0:
                shares[(row.session_id, row.user_id)] = min(
                    1.0, row.watched_seconds / row.duration_seconds)
    result = []
    for user_id, username, display_name in students:
        marks = []
        for session in sessions:
            attended = user_id in present[session.id]
            share = shares.get((session.id, user_id), 0.0)
            watched = bool(session.recording_url) and share * 100 >= watched_percent
            marks.append(SessionMark(session.id, attended, round(share, 3),
                                     attended or watched))
        result.append(StudentCompletion(user_id, username, display_name, marks))
    return result
