"""Teacher double-booking: refusing a schedule or session that overlaps the teacher's others.

A teacher is busy during
  - every scheduled or live session of any of their courses, and
  - every occurrence of an active schedule of any of their active courses, except
    occurrences that already have a session: that session (moved, cancelled, ...) stands
    for the occurrence instead.
Intervals are half-open, so a class ending at 10:00 and one starting at 10:00 do not clash.
A clash is refused with 409 "schedule_conflict", naming both sides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError, conflict
from control.models import Course, CourseSession, Schedule, User
from control.scheduling.clashes import first_clash
from control.scheduling.recurrence import Occurrence, RecurrenceError
from control.scheduling.session_generation import occurrences
from control.sessions.states import BUSY_STATES
from control.time_format import iso_z

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clash:
    """A candidate occurrence and the existing booking it overlaps."""

    candidate: Occurrence
    other: Occurrence
    schedule_id: int | None
    session_id: int | None
    title: str

    def error(self) -> ApiError:
        what = f'session {self.session_id}' if self.session_id else f"schedule {self.schedule_id}"
        found: dict[str, object] = {}
        if self.schedule_id is not None:
            found["schedule_id"] = self.schedule_id
        if self.session_id is not None:
            found["session_id"] = self.session_id
        found.update(start=iso_z(self.other.start), end=iso_z(self.other.end), title=self.title)
        return conflict(
            "schedule_conflict",
            f"the teacher is already booked from {iso_z(self.other.start)} to"
            f' {iso_z(self.other.end)} ({what}, "{self.title}"), which overlaps the'
            f" occurrence from {iso_z(self.candidate.start)} to {iso_z(self.candidate.end)}",
            conflict=found,
            occurrence={"start": iso_z(self.candidate.start), "end": iso_z(self.candidate.end)},
        )


async def find_clash(
    db: AsyncSession,
    *,
    teacher_id: int,
    candidate: list[Occurrence],
    exclude_schedule_id: int | None = None,
    exclude_session_id: int | None = None,
) -> Clash | None:
    """The earliest overlap between `candidate` and the teacher's bookings, if any.

    Bookings of the schedule or session being edited are left out. Locks the teacher's
    row first, so two concurrent bookings for one teacher are checked one after the other
    on PostgreSQL (SQLite serialises writers anyway).
    """
    if not candidate:
        return None
    await db.execute(select(User.id).where(User.id == teacher_id).with_for_update())
    window_start = min(o.start for o in candidate)
    window_end = max(o.end for o in candidate)
    teacher_courses = select(Course.id).where(Course.teacher_id == teacher_id)
    clashes: list[Clash] = []

    stmt = select(CourseSession).where(
        CourseSession.course_id.in_(teacher_courses),
        CourseSession.status.in_(BUSY_STATES),
        CourseSession.end_time > window_start,
        CourseSession.start_time < window_end,
    )
    if exclude_session_id is not None:
        stmt = stmt.where(CourseSession.id != exclude_session_id)
    if exclude_schedule_id is not None:
        stmt = stmt.where(
            or_(
                CourseSession.schedule_id.is_(None),
                CourseSession.schedule_id != exclude_schedule_id,
            )
        )
    sessions = (await db.scalars(stmt.order_by(CourseSession.start_time))).all()
    by_slot: dict[tuple[datetime, datetime], CourseSession] = {}
    for session in sessions:
        by_slot.setdefault((session.start_time, session.end_time), session)
    slots = [Occurrence(start=start, end=end) for start, end in by_slot]
    pair = first_clash(candidate, slots)
    if pair is not None:
        session = by_slot[(pair[1].start, pair[1].end)]
        clashes.append(Clash(pair[0], pair[1], session.schedule_id, session.id, session.title))

    schedule_stmt = select(Schedule).where(
        Schedule.course_id.in_(
            select(Course.id).where(Course.teacher_id == teacher_id, Course.is_active.is_(True))
        ),
        Schedule.is_active.is_(True),
    )
    if exclude_schedule_id is not None:
        schedule_stmt = schedule_stmt.where(Schedule.id != exclude_schedule_id)
    schedules = (await db.scalars(schedule_stmt.order_by(Schedule.id))).all()
    if schedules:
        longest = timedelta(minutes=max(s.duration_minutes for s in schedules))
        rows = await db.execute(
            select(CourseSession.schedule_id, CourseSession.occurrence_start).where(
                CourseSession.schedule_id.in_([s.id for s in schedules]),
                CourseSession.occurrence_start >= window_start - longest,
                CourseSession.occurrence_start < window_end,
            )
        )
        materialized = {(schedule_id, start) for schedule_id, start in rows}
        for schedule in schedules:
            # Occurrences overlapping the window, including one that began before it.
            try:
                expanded = occurrences(schedule, window_start, window_end)
            except RecurrenceError as exc:
                # It generates no sessions either; the periodic generation logs it too.
                log.warning("schedule %s cannot be expanded: %s", schedule.id, exc)
                continue
            slots = [o for o in expanded if (schedule.id, o.start) not in materialized]
            pair = first_clash(candidate, slots)
            if pair is not None:
                clashes.append(Clash(pair[0], pair[1], schedule.id, None, schedule.title))

    if not clashes:
        return None
    return min(clashes, key=lambda c: (c.candidate.start, c.other.start))


async def refuse_clash(
    db: AsyncSession,
    *,
    teacher_id: int,
    candidate: list[Occurrence],
    exclude_schedule_id: int | None = None,
    exclude_session_id: int | None = None,
) -> None:
    """Raise 409 "schedule_conflict" if `candidate` double-books the teacher."""
    clash = await find_clash(
        db,
        teacher_id=teacher_id,
        candidate=candidate,
        exclude_schedule_id=exclude_schedule_id,
        exclude_session_id=exclude_session_id,
    )
    if clash is not None:
        raise clash.error()
