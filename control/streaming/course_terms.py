"""A course's term: the dates between which its enrolled students may use it (play, chat,
resources). Either end may be open; the course's staff are never bound by it."""

from __future__ import annotations

from datetime import datetime

from control.models import Course


def within_term(course: Course, now: datetime) -> bool:
    """Whether `now` lies in [access_opens_at, access_closes_at)."""
    if course.access_opens_at is not None and now < course.access_opens_at:
        return False
    return course.access_closes_at is None or now < course.access_closes_at
