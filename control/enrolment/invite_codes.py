"""Invite codes for restricted courses: issuing them and checking one a student presents.

A code belongs to one course; it is good while not revoked, not expired and used fewer
than max_uses times. Redeeming happens with the course row locked (see
control.enrolment.rules), so two students cannot both take a code's last use.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError
from control.models import InviteCode
from control.models.base import utcnow


def new_code() -> str:
    # Short enough to type or paste into a chat; 96 random bits cannot be guessed.
    return secrets.token_urlsafe(12)


def invite_state(invite: InviteCode) -> str:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and invite.expires_at <= utcnow():
        return "expired"
    if invite.uses >= invite.max_uses:
        return "used_up"
    return "valid"


def _refused(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


async def opens_hidden_course(db: AsyncSession, course_id: int, code: str | None) -> bool:
    """Whether `code` is one of this course's invites, in any state.

    A restricted course is hidden from students it has not admitted: to them it answers
    like a missing course, unless they name one of its codes (a code shows they were told
    of the course; whether it is still usable is `usable_invite`'s answer).
    """
    if not code:
        return False
    found = await db.scalar(
        select(InviteCode.id).where(InviteCode.code == code, InviteCode.course_id == course_id)
    )
    return found is not None


async def usable_invite(db: AsyncSession, course_id: int, code: str | None) -> InviteCode:
    """The invite `code` opens for this course, or 403 saying why not."""
    if not code:
        raise _refused(
            "invite_required", "this course is restricted: enrolling needs an invite code"
        )
    invite = await db.scalar(select(InviteCode).where(InviteCode.code == code))
    # A code for another course is reported as unknown: it says nothing about that course.
    if invite is None or invite.course_id != course_id:
        raise _refused("invite_invalid", "this invite code is not valid for this course")
    state = invite_state(invite)
    if state != "valid":
        raise _refused(
            f"invite_{state}", f"this invite code is {state.replace('_', ' ')}"
        )
    return invite
