"""Stream keys that stop working because the people who hold them lost the course.

A stream key is a credential of whoever made it or teaches the course it publishes to.
When that person loses the course (it is handed to another teacher, their account is
deactivated, their role no longer lets them manage it), the keys they know are revoked:
a revoked key stops authorising at once, and the caller tells the media edge (after
commit) so an encoder live on one of these keys is disconnected too.

Each function answers {course_id: [key ids revoked]}, for that notice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.courses.permissions import is_staff
from control.models import Course, StreamKey, User

__all__ = ["RevokedKeys", "revoke_course_keys", "revoke_keys_lost_by"]

RevokedKeys = dict[int, list[int]]


def _revoke(rows: list[StreamKey], now: datetime) -> RevokedKeys:
    revoked: RevokedKeys = {}
    for row in rows:
        row.revoked_at = now
        revoked.setdefault(row.course_id, []).append(row.id)
    return revoked


async def revoke_course_keys(db: AsyncSession, course_id: int, *, now: datetime) -> RevokedKeys:
    """Every live key of the course (it changes hands: the previous teacher knew them).
    The new teacher makes their own."""
    rows = await db.scalars(
        select(StreamKey).where(StreamKey.course_id == course_id, StreamKey.revoked_at.is_(None))
    )
    return _revoke(list(rows), now)


async def revoke_keys_lost_by(db: AsyncSession, user: User, *, now: datetime) -> RevokedKeys:
    """The live keys `user` made or that publish to a course they teach, for each course
    they may no longer manage as they are now (deactivated, demoted). Call it after
    changing the user."""
    rows = (
        await db.execute(
            select(StreamKey, Course)
            .join(Course, Course.id == StreamKey.course_id)
            .where(
                StreamKey.revoked_at.is_(None),
                or_(StreamKey.created_by == user.id, Course.teacher_id == user.id),
            )
            .order_by(StreamKey.id)
        )
    ).all()
    lost = [key for key, course in rows if not (user.is_active and is_staff(user, course))]
    return _revoke(lost, now)
