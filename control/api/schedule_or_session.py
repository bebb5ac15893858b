"""Loading the schedule or the session named in the path, as its course's rules allow.

Both belong to a course: the caller must see the course (else 404, so existence stays
private), only staff see inactive ones, and a write needs staff and takes row locks in
the one order used everywhere (control.db.course_locks: courses by id, then the row itself),
so concurrent writers cannot deadlock.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from control.courses.permissions import is_staff, require_staff, visible_course
from control.db.course_locks import lock_courses
from control.errors import ApiError, conflict, not_found
from control.http.routing import Ctx
from control.models import Course, CourseSession, Schedule

Row = TypeVar("Row", Schedule, CourseSession)


async def load_in_course(
    ctx: Ctx, model: type[Row], row_id: int, what: str, *, write: bool = False,
    also_lock: int | None = None,
) -> tuple[Row, Course]:
    """The row and its course; `also_lock` is a second course a write moves the row to."""
    row = await ctx.db.get(model, row_id)
    if row is None:
        raise not_found(what)
    if write:
        await lock_courses(ctx.db, {row.course_id, *([also_lock] if also_lock else [])})
    try:
        course = await visible_course(ctx.db, ctx.user, row.course_id)
    except ApiError:
        raise not_found(what) from None
    if not row.is_active and not is_staff(ctx.user, course):
        raise not_found(what)
    if not write:
        return row, course
    require_staff(ctx.me, course)
    locked = (
        await ctx.db.execute(
            select(model)
            .where(model.id == row.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if locked is None:
        raise not_found(what)
    if locked.course_id != course.id:
        raise conflict("concurrent_change", f"the {what} changed meanwhile; try again")
    return locked, course
