"""The demo course a first start offers: a public course with a stream key, so a
newcomer can press "Start streaming" in OBS and watch the result at once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control.models import AccessLevel, Category, Course, User
from control.streaming.stream_keys import new_key

__all__ = ["create_demo_course"]


async def create_demo_course(db: AsyncSession, owner: User, *, capacity: int) -> tuple[Course, str]:
    """Make the demo category, course and stream key; returns the course and the key
    (the only time the key exists in clear)."""
    category = Category(name="Demo", description="Made on first start; delete at will.")
    db.add(category)
    await db.flush()
    course = Course(
        title="Demo class",
        description="Publish to it from OBS to try Academia Live.",
        teacher_id=owner.id,
        category_id=category.id,
        access_level=AccessLevel.PUBLIC,
        capacity=capacity,
    )
    db.add(course)
    await db.flush()
    key, row = new_key(course.id, "demo", owner.id, None)
    db.add(row)
    await db.flush()
    return course, key
