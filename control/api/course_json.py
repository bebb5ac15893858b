"""A course as the API's JSON: the one definition of its fields.

Both ways of reading a course feed it the same row (`CourseRow`, the column order of the
course list's query): the course list hands over the plain driver tuples as they come
(SQLite gives datetimes as text and booleans as 0/1, PostgreSQL naive UTC datetimes and
bools; the prerequisites arrive aggregated as "3,1"), and the single-course view builds one
from the ORM's objects with `orm_row`. So a list item and the course's own page cannot
differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from control.models import Course
from control.time_format import stored_iso_z


class CourseRow(NamedTuple):
    """What a course's JSON is made of, in the order the list query selects it."""

    id: int
    title: str
    description: str
    teacher_id: int
    category_id: int
    access_level: str
    capacity: int
    price_cents: int | None
    currency: str | None
    chat_mode: str
    vod_channel_id: str
    is_live: bool | int
    is_active: bool | int
    created_at: datetime | str
    updated_at: datetime | str
    username: str
    display_name: str
    category_name: str
    enrolled_count: int
    prerequisite_ids: str | None  # "3,1": ids joined by commas, in no promised order
    access_opens_at: datetime | str | None
    access_closes_at: datetime | str | None
    sequential_release: float | None


def orm_row(
    course: Course,
    username: str,
    display_name: str,
    category_name: str,
    enrolled: int,
    prerequisite_ids: list[int],
) -> CourseRow:
    """The row of a course read through the ORM, as the list query would give it."""
    return CourseRow(
        course.id, course.title, course.description, course.teacher_id, course.category_id,
        course.access_level.value, course.capacity, course.price_cents, course.currency,
        course.chat_mode.value, course.vod_channel_id, course.is_live, course.is_active,
        course.created_at, course.updated_at, username, display_name, category_name,
        enrolled, ",".join(str(i) for i in prerequisite_ids) or None,
        course.access_opens_at, course.access_closes_at, course.sequential_release,
    )


def _id_list(text: str | None) -> list[int]:
    return sorted(int(part) for part in text.split(",")) if text else []


def _moment(value: datetime | str | None) -> str | None:
    return None if value is None else stored_iso_z(value)


def course_json(row: Sequence[Any], public_url: str) -> dict[str, Any]:
    """The course's JSON from its row (a `CourseRow` or a driver tuple in that order)."""
    (course_id, title, description, teacher_id, category_id, access_level, capacity,
     price_cents, currency, chat_mode, vod_channel_id, is_live, is_active, created_at,
     updated_at, username, display_name, category_name, enrolled, prerequisite_ids,
     access_opens_at, access_closes_at, sequential_release) = row
    return {
        "id": course_id,
        "title": title,
        "description": description,
        "teacher": {"id": teacher_id, "username": username, "display_name": display_name},
        "category": {"id": category_id, "name": category_name},
        "access_level": access_level,
        "capacity": capacity,
        "enrolled_count": enrolled,
        "seats_left": max(capacity - enrolled, 0),
        "price_cents": price_cents,
        "currency": currency or None,
        "prerequisite_ids": _id_list(prerequisite_ids),
        "chat_mode": chat_mode,
        "vod_channel_id": vod_channel_id,
        "is_live": bool(is_live),
        "is_active": bool(is_active),
        # The term enrolled students may use the course in, and recordings in order.
        "access_opens_at": _moment(access_opens_at),
        "access_closes_at": _moment(access_closes_at),
        "sequential_release": sequential_release,
        "live_iframe": (
            f'<iframe src="{public_url}/embed/{course_id}" width="960" height="540"'
            ' allow="autoplay; fullscreen" allowfullscreen></iframe>'
        ),
        "created_at": stored_iso_z(created_at),
        "updated_at": stored_iso_z(updated_at),
    }
