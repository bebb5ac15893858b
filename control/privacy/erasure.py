"""Erasing a person (an admin's POST /users/{id}/erase): their personal data goes, the
course records they are part of stay whole, pointing at an anonymous account.

What changes: the username becomes `erased-{id}`, email and display name are emptied, the
password hash becomes one no password matches, the account is deactivated and marked
erased (no admin may reactivate or re-password it: users.update refuses), every sign-in
token is revoked, chat tickets deleted, the stream keys they made stop working. What stays,
anonymised by that account: enrollments and their history, payments (bookkeeping),
attendance, chat messages, moderation records, the audit trail.

A teacher who still teaches a course is refused (409 `teaches_courses`, the courses
named) until an admin hands those courses to someone else: a course must have a teacher.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.accounts.auth_tokens import revoke_all_for
from control.errors import conflict
from control.models import ChatTicket, Course, User
from control.models.base import utcnow
from control.streaming.key_revocation import RevokedKeys, revoke_keys_lost_by

__all__ = ["ERASED_PASSWORD_HASH", "erase_user", "erased_username"]

# Not an argon2 hash: verifying any password against it fails (control/accounts/passwords).
ERASED_PASSWORD_HASH = "!erased"


def erased_username(user_id: int) -> str:
    return f"erased-{user_id}"


async def erase_user(db: AsyncSession, user: User, *, by: User) -> RevokedKeys:
    """Erase `user`; returns the stream keys revoked, for the caller to tell the media
    edge once committed. 409 for oneself, an erased account, or a teacher with courses."""
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
    user.username = erased_username(user.id)
    user.email = ""
    user.display_name = ""
    user.password_hash = ERASED_PASSWORD_HASH
    user.is_active = False
    user.erased_at = utcnow()
    await revoke_all_for(db, user.id)
    await db.execute(delete(ChatTicket).where(ChatTicket.user_id == user.id))
    await db.flush()
    return await revoke_keys_lost_by(db, user, now=utcnow())
