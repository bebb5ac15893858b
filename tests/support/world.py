"""The small school most API tests start from (conftest's `world` fixture builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from support.api_client import Person


@dataclass
class World:
    """A small school: an admin, two teachers, three students, a category, a course."""

    admin: Person
    teacher: Person
    other_teacher: Person
    student: Person
    student2: Person
    student3: Person
    category_id: int
    course_id: int
