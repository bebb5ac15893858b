"""Erasing a person (an admin's POST /users/{id}/erase): their personal data goes, the
course records they are part of stay whole, pointing at an anonymous account.

What changes: their places in courses are given up (an enrollment active, requested,
awaiting payment or waitlisted becomes `removed`, reason "erased", and the seat goes to the
waitlist: an erased person holds no seat); the username becomes `erased-{id}`, email and
display name are emptied, the password hash becomes one no password matches, the account
is deactivated and marked erased (no admin may reactivate or re-password it:
users.update refuses), every sign-in token is revoked, chat tickets deleted, the stream
keys they made stop working. What stays, anonymised by that account: enrollments
(completed ones as they were) and their history, payments (bookkeeping), attendance, chat
messages, moderation records, the audit trail, the course files they uploaded (they are
the course's: `course_resources.uploaded_by` names the anonymous account).

A teacher who still teaches a course is refused (409 `teaches_courses`, the courses
named) until an admin hands those courses to someone else: a course must have a teacher.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.accounts.auth_tokens import revoke_all_for
from control.db.course_locks import lock_courses
from control.enrolment.enrolling import give_up_place
from control.enrolment.states import IN_FLOW, Action
from control.errors import conflict
from control.models import ChatTicket, Course, Enrollment, EnrollmentStatus, User
from control.models.base import utcnow
from control.streaming.key_revocation import RevokedKeys, revoke_keys_lost_by

__all__ = ["ERASED_PASSWORD_HASH", "erase_user", "erased_username"]

# Not an argon2 hash: verifying any password against it fails (control/accounts/passwords).
ERASED_PASSWORD_HASH = "!erased"


def erased_username(user_id: int) -> str:
    return f"erased-{user_id}"


async def erase_user(db: AsyncSession, user_id: int, *, by: User,
                     settings: CourseSettings) -> tuple[User, RevokedKeys] | None:
    """Erase the user; returns them and the stream keys revoked, for the caller to tell
    the media edge once committed; None when there is no such user. 409 for oneself, an
    erased account, or a teacher with courses."""
    # The lock order (control/db/course_locks.py): their courses first, then their row.
    in_flow = select(Enrollment).where(Enrollment.student_id == user_id,
                                       Enrollment.status.in_(IN_FLOW))
    await lock_courses(db, (e.course_id for e in (await db.scalars(in_flow)).all()))
    user = await db.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        return None
    if user.id == by.id:
        raise conflict("self_lockout", "an admin cannot erase themself")
    if user.erased_at is not None:
        raise conflict("already_erased", "this person was erased already")
    courses = (await db.scalars(select(Course.id).where(Course.teacher_id == user.id)
                                .order_by(Course.id))).all()
    if courses:
        raise conflict("teaches_courses",
                       "hand this teacher's courses to another teacher first "
                       "(PATCH /courses/{id}/ with teacher_id)", course_ids=list(courses))
    # Read again under the course locks: what a concurrent write left is what is given up.
    for enrollment in (await db.scalars(in_flow.execution_options(populate_existing=True)
                                        .order_by(Enrollment.id))).all():
        course = await db.get(Course, enrollment.course_id)
        if course is not None:
            await give_up_place(db, course, enrollment, Action.REMOVE,
                                EnrollmentStatus.REMOVED, actor_id=by.id, reason="erased",
                                settings=settings)
    user.username = erased_username(user.id)
    user.email = ""
    user.display_name = ""
    user.password_hash = ERASED_PASSWORD_HASH
    user.is_active = False
    user.erased_at = utcnow()
    await revoke_all_for(db, user.id)
    await db.execute(delete(ChatTicket).where(ChatTicket.user_id == user.id))
    await db.flush()
    return user, await revoke_keys_lost_by(db, user, now=utcnow())
