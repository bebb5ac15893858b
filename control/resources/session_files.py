"""What becomes of a session's files when the session is deleted (only a class that never
took place can be): they stay, as the course's own. Deleting the row would leave its bytes
orphaned in storage, and the teacher's slides are not the class's to lose."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import CourseResource

__all__ = ["keep_for_course"]


async def keep_for_course(db: AsyncSession, session_id: int) -> None:
    await db.execute(update(CourseResource).where(CourseResource.session_id == session_id)
                     .values(session_id=None))
