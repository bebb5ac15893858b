"""A course's prerequisites: reading them, and setting them without a cycle.

Setting them is a teacher's (or an admin's) edit of the course; whether a student has
completed them when enrolling is control.enrolment.rules' question.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.courses.permissions import can_view
from control.errors import unprocessable
from control.models import Course, User, course_prerequisites

_links = course_prerequisites.c


async def prerequisite_map(db: AsyncSession, course_ids: list[int]) -> dict[int, list[int]]:
    """Each course's prerequisite ids, in id order (courses without any are left out)."""
    found: dict[int, list[int]] = {}
    if not course_ids:
        return found
    rows = await db.execute(
        select(_links.course_id, _links.prerequisite_id)
        .where(_links.course_id.in_(course_ids))
        .order_by(_links.prerequisite_id)
    )
    for course_id, prerequisite_id in rows:
        found.setdefault(course_id, []).append(prerequisite_id)
    return found


async def set_prerequisites(db: AsyncSession, course: Course, ids: list[int], *, by: User) -> None:
    """Make `ids` the course's prerequisites; 422 for the course itself, a course `by` may
    not see (unless already linked), or a link that would make a cycle."""
    wanted = sorted(set(ids))
    if course.id in wanted:
        raise unprocessable("a course cannot be its own prerequisite")
    if wanted:
        current = set(
            (
                await db.scalars(
                    select(_links.prerequisite_id).where(_links.course_id == course.id)
                )
            ).all()
        )
        found = set()
        for candidate in await db.scalars(select(Course).where(Course.id.in_(wanted))):
            # A course the caller may not see is named like a missing one (its id would
            # then show on this course publicly); links already in place may stay.
            if candidate.id in current or await can_view(db, by, candidate):
                found.add(candidate.id)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise unprocessable(f"prerequisite courses not found: {missing}")
        await _refuse_cycle(db, course, wanted)
    await db.execute(delete(course_prerequisites).where(_links.course_id == course.id))
    if wanted:
        await db.execute(
            insert(course_prerequisites),
            [{"course_id": course.id, "prerequisite_id": i} for i in wanted],
        )


async def _refuse_cycle(db: AsyncSession, course: Course, wanted: list[int]) -> None:
    # No prerequisite may (transitively) require this course: walk their prerequisites
    # breadth first, each course once.
    frontier, seen = set(wanted), set(wanted)
    while frontier:
        rows = await db.scalars(
            select(_links.prerequisite_id).where(_links.course_id.in_(frontier))
        )
        nxt = set(rows.all())
        if course.id in nxt:
            raise unprocessable("these prerequisites would make a cycle")
        frontier = nxt - seen
        seen |= nxt
