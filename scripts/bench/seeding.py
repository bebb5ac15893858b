"""The benchmark's data, written straight into Academia Live's database.

The same shape as the DRF baseline's (10,000 courses titled "Course <i>" with the
same description, in 10 categories), plus teachers, and students with ready sign-in
tokens for the enroll load. Bulk inserts through the project's models take seconds,
where going through the API would take minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select

from config.settings import AuthSettings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.db.database import Database
from control.models import AccessLevel, Category, Course, Role, User

# The student the list load signs in as (through POST /auth/login, as a client would).
LOGIN_USERNAME = "bench_student"
LOGIN_PASSWORD = "bench-student-password"
DESCRIPTION = "An introduction " * 5  # the DRF baseline's
# Sign-ins are not measured: the cheapest argon2 cost keeps seeding fast. The cost is
# stored in each hash, so the server verifies with it whatever its own settings say.
_CHEAP_HASHING = AuthSettings(password_time_cost=1, password_memory_cost_kib=64)
_BATCH = 2_000


@dataclass(frozen=True)
class Seeded:
    course_ids: list[int]
    student_tokens: list[str]  # one per enroll student, valid for token_ttl_seconds


async def seed(
    url: str,
    *,
    courses: int,
    categories: int,
    teachers: int,
    students: int,
    capacity: int,
    token_ttl_seconds: int = 86_400,
) -> Seeded:
    """Fill an empty, migrated database; returns what the loads need."""
    database = Database(url)
    password_hash = Passwords(_CHEAP_HASHING).hash(LOGIN_PASSWORD)
    try:
        async with database.transaction(write=True) as db:
            await db.execute(
                insert(Category), [{"name": f"cat{i}"} for i in range(categories)]
            )
            await db.execute(
                insert(User),
                [
                    {"username": f"teacher{i}", "password_hash": password_hash,
                     "role": Role.TEACHER, "display_name": f"Teacher {i}"}
                    for i in range(teachers)
                ]
                + [{"username": LOGIN_USERNAME, "password_hash": password_hash,
                    "role": Role.STUDENT}]
                + [
                    {"username": f"student{i}", "password_hash": password_hash,
                     "role": Role.STUDENT}
                    for i in range(students)
                ],
            )
            category_ids = list(await db.scalars(select(Category.id).order_by(Category.id)))
            teacher_ids = list(
                await db.scalars(
                    select(User.id).where(User.role == Role.TEACHER).order_by(User.id)
                )
            )
            rows = [
                {
                    "title": f"Course {i}",
                    "description": DESCRIPTION,
                    "teacher_id": teacher_ids[i % len(teacher_ids)],
                    "category_id": category_ids[i % len(category_ids)],
                    "access_level": AccessLevel.PUBLIC,
                    "capacity": capacity,
                }
                for i in range(courses)
            ]
            for start in range(0, len(rows), _BATCH):
                await db.execute(insert(Course), rows[start : start + _BATCH])
            course_ids = list(await db.scalars(select(Course.id).order_by(Course.id)))
            enrollers = (
                await db.scalars(
                    select(User)
                    .where(User.role == Role.STUDENT, User.username != LOGIN_USERNAME)
                    .order_by(User.id)
                )
            ).all()
            tokens = [(await issue_token(db, u, token_ttl_seconds))[0] for u in enrollers]
    finally:
        await database.close()
    return Seeded(course_ids=course_ids, student_tokens=tokens)
