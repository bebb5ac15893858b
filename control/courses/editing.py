"""Creating and changing a course: who teaches it, its category, its price, its defaults.

The rules a course's fields obey whoever edits them: a teacher creates courses for
themself and only an admin hands one to another teacher (whose arrival revokes the
course's stream keys: the previous teacher knew them); the teacher is an active teacher
and the category an active one; only a paid course has a price, and a priced course a
currency; a larger capacity lets the waitlist move up at once. The caller has checked
that `by` may manage the course, and owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from control.courses.prerequisites import set_prerequisites
from control.enrolment.rules import promote_waitlist
from control.errors import forbidden, unprocessable
from control.models import AccessLevel, Category, Course, Role, User
from control.models.base import utcnow
from control.streaming.key_revocation import RevokedKeys, revoke_course_keys


async def _check_category(db: AsyncSession, category_id: int) -> None:
    category = await db.get(Category, category_id)
    if category is None or not category.is_active:
        raise unprocessable(f"category {category_id} does not exist or is inactive")


async def _check_teacher(db: AsyncSession, teacher_id: int) -> None:
    teacher = await db.get(User, teacher_id)
    if teacher is None or teacher.role != Role.TEACHER or not teacher.is_active:
        raise unprocessable(f"user {teacher_id} is not an active teacher")


def _check_price(course: Course) -> None:
    if course.access_level == AccessLevel.PAID:
        if not course.price_cents:
            raise unprocessable("a paid course needs price_cents")
    elif course.price_cents is not None:
        raise unprocessable("only paid courses have a price")


# Fields a null clears (elsewhere a null in a patch means "leave as is").
_CLEARABLE = ("price_cents", "access_opens_at", "access_closes_at", "sequential_release")


def _check_term(course: Course) -> None:
    opens, closes = course.access_opens_at, course.access_closes_at
    if opens is not None and closes is not None and closes <= opens:
        raise unprocessable("access_closes_at must come after access_opens_at")


async def create_course(
    db: AsyncSession, by: User, fields: dict[str, Any], settings: Settings
) -> Course:
    """A new course from `fields` (a course create body's values) made by a teacher or an
    admin; 403 or 422 when a rule above refuses it."""
    teacher_id = fields["teacher_id"]
    if by.role == Role.TEACHER:
        if teacher_id not in (None, by.id):
            raise forbidden("teachers create courses for themselves only")
        teacher_id = by.id
    else:
        if teacher_id is None:
            raise unprocessable("teacher_id is required when an admin creates a course")
        await _check_teacher(db, teacher_id)
    await _check_category(db, fields["category_id"])
    course = Course(
        title=fields["title"],
        description=fields["description"],
        teacher_id=teacher_id,
        category_id=fields["category_id"],
        access_level=fields["access_level"],
        capacity=fields["capacity"] or settings.courses.course_enrollment_limit,
        price_cents=fields["price_cents"],
        currency=fields["currency"] or (
            settings.payments.currency if fields["price_cents"] else ""
        ),
        chat_mode=fields["chat_mode"],
        vod_channel_id=fields["vod_channel_id"],
        is_active=fields["is_active"],
        access_opens_at=fields["access_opens_at"],
        access_closes_at=fields["access_closes_at"],
        sequential_release=fields["sequential_release"],
    )
    _check_price(course)
    _check_term(course)
    db.add(course)
    await db.flush()
    await set_prerequisites(db, course, fields["prerequisite_ids"], by=by)
    return course


async def change_course(
    db: AsyncSession, course: Course, by: User, values: dict[str, Any], settings: Settings
) -> RevokedKeys:
    """Apply `values` (a replace's or a patch's given fields) to the course; returns the
    stream keys revoked by a change of teacher, for the caller to tell the media edge
    once committed. 403 or 422 when a rule above refuses it."""
    revoked: RevokedKeys = {}
    if "teacher_id" in values:
        if values["teacher_id"] != course.teacher_id and by.role != Role.ADMIN:
            raise forbidden("only an admin may hand a course to another teacher")
        if values["teacher_id"] is None:
            values.pop("teacher_id")
        else:
            await _check_teacher(db, values["teacher_id"])
            if values["teacher_id"] != course.teacher_id:
                # The previous teacher knows the course's stream keys: none survive.
                revoked = await revoke_course_keys(db, course.id, now=utcnow())
    if values.get("category_id") is not None and values["category_id"] != course.category_id:
        await _check_category(db, values["category_id"])
    prerequisites = values.pop("prerequisite_ids", None)
    if "capacity" in values and values["capacity"] is None:
        values["capacity"] = settings.courses.course_enrollment_limit
    for name, value in values.items():
        if value is None and name not in _CLEARABLE:
            continue
        setattr(course, name, value)
    if course.price_cents and not course.currency:
        course.currency = settings.payments.currency
    _check_price(course)
    _check_term(course)
    if prerequisites is not None:
        await set_prerequisites(db, course, prerequisites, by=by)
    await db.flush()
    # A larger capacity frees seats: the waitlist moves up at once.
    await promote_waitlist(db, course, by.id, settings.courses)
    return revoked
