"""Who watched what share of one recording: the teacher's dashboard, per session."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import (
    CourseSession,
    Enrollment,
    EnrollmentStatus,
    RecordingProgress,
    Role,
    User,
)
from control.progress.watching import Progress, progress_from

# Students whose progress is reported even without a row: those the course counts on.
COUNTED = (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)


@dataclass(frozen=True)
class Watcher:
    user_id: int
    username: str
    display_name: str
    progress: Progress


async def watch_report(db: AsyncSession, session: CourseSession) -> list[Watcher]:
    """One row per student enrolled in the course or with progress in the recording (a
    public course's visitors too), by username; staff are left out."""
    enrolled = select(Enrollment.student_id).where(
        Enrollment.course_id == session.course_id, Enrollment.status.in_(COUNTED))
    watched = select(RecordingProgress.user_id).where(
        RecordingProgress.session_id == session.id)
    students = (await db.scalars(
        select(User).where(User.role == Role.STUDENT,
                           or_(User.id.in_(enrolled), User.id.in_(watched)))
        .order_by(User.username)
    )).all()
    rows = {r.user_id: r for r in (await db.scalars(
        select(RecordingProgress).where(RecordingProgress.session_id == session.id))).all()}
    report = []
    for student in students:
        report.append(Watcher(student.id, student.username, student.display_name,
                              progress_from(rows.get(student.id))))
    return report
