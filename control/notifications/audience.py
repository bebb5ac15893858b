"""Who is concerned by a course's news: its actively enrolled students, and its teacher."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Enrollment, EnrollmentStatus

__all__ = ["active_students"]


async def active_students(db: AsyncSession, course_id: int) -> list[int]:
    rows = await db.scalars(
        select(Enrollment.student_id)
        .where(Enrollment.course_id == course_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .order_by(Enrollment.student_id)
    )
    return list(rows.all())
