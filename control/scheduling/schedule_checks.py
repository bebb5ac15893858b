"""What a schedule must satisfy before its sessions are made: classes that do not overlap
one another, not absurdly many of them, and no double booking of its teacher; then its
sessions are (re)generated. Used by the API's schedule writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.errors import unprocessable
from control.models import Course, Schedule
from control.notifications.announce import schedule_changed
from control.scheduling.double_booking import refuse_clash
from control.scheduling.recurrence import Occurrence, RecurrenceError
from control.scheduling.session_generation import EXPANSION_LIMIT, occurrences, sync_schedule
from control.time_format import iso_z

__all__ = ["check_and_generate"]


def _check_occurrences(found: list[Occurrence], horizon_days: int) -> None:
    """A schedule's classes must not overlap one another, nor be absurdly many."""
    for earlier, later in pairwise(found):
        if later.start < earlier.end:
            raise unprocessable(
                f"this schedule's classes overlap each other (the one at {iso_z(earlier.start)}"
                f" runs past the start of the next at {iso_z(later.start)})",
                "overlapping_occurrences",
            )
    if len(found) >= EXPANSION_LIMIT:
        raise unprocessable(
            f"this schedule has {EXPANSION_LIMIT} or more classes in the next"
            f" {horizon_days} days; use a less frequent rule",
            "too_many_occurrences",
        )


async def check_and_generate(
    db: AsyncSession, settings: CourseSettings, schedule: Schedule, course: Course, *,
    now: datetime, refresh: bool,
) -> None:
    """Refuse overlapping, too many or double-booked classes, then (re)generate the
    schedule's sessions and announce the change; every refusal is a 422 naming what is
    wrong."""
    days = max(settings.conflict_horizon_days, settings.schedule_horizon_days)
    conflict_end = now + timedelta(days=settings.conflict_horizon_days)
    try:
        found = occurrences(schedule, now, now + timedelta(days=days))
        _check_occurrences(found, days)
        candidate = [o for o in found if o.start < conflict_end]
        if schedule.is_active and course.is_active:
            await refuse_clash(
                db,
                teacher_id=course.teacher_id,
                candidate=candidate,
                exclude_schedule_id=schedule.id,
            )
        if course.is_active:
            await sync_schedule(
                db,
                schedule,
                now=now,
                horizon=timedelta(days=settings.schedule_horizon_days),
                refresh=refresh,
            )
            # New times for the course's classes: its students are told (after commit).
            await schedule_changed(db, schedule, course)
    except RecurrenceError as exc:
        raise unprocessable(str(exc), "invalid_recurrence") from None
