"""Row locks for writes about a course, and the one order every writer takes them in.

The lock order (PostgreSQL, SELECT ... FOR UPDATE):
1. course rows, by ascending id (a write touching two courses, such as moving a schedule
   or a session to another course, locks both, lowest id first);
2. then the rows of that course the write reads and changes: its schedules (by id), its
   sessions, its enrollments, attendance intervals;
3. then user rows (a teacher's row while checking double booking).
Every writer that holds more than one lock takes them in this order, so two writers never
wait on each other in a circle; a writer that needs only a later lock may skip the earlier
ones. Seat counting (capacity, waitlist), going live and ending live, schedule and session
edits all hold their course's lock, which is what serialises them per course.

SQLite does not render FOR UPDATE: there the database's single writer lock
(control.db.database) serialises writers instead, and these calls are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Course


async def lock_courses(db: AsyncSession, course_ids: Iterable[int]) -> None:
    """Lock the course rows, lowest id first (the lock order above)."""
    ids = sorted(set(course_ids))
    if ids:
        await db.execute(
            select(Course.id).where(Course.id.in_(ids)).order_by(Course.id).with_for_update()
        )


async def lock_course(db: AsyncSession, course_id: int) -> None:
    """Lock one course row: the first lock of any write about that course."""
    await lock_courses(db, (course_id,))
