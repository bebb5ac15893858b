"""Invite codes for restricted courses: the course's teacher (or an admin) issues, lists
and revokes them; students present one to /courses/{course_id}/enroll.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field
from sqlalchemy import select

from control.courses.permissions import managed_course
from control.enrolment.invite_codes import invite_state, new_code
from control.errors import ApiError, not_found, unprocessable
from control.http.bodies import Body
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import InviteCode
from control.models.base import utcnow

routes = Routes("invites")


class InviteBody(Body):
    max_uses: int = Field(default=1, ge=1, le=100_000)
    expires_at: AwareDatetime | None = None


def invite_json(invite: InviteCode) -> dict[str, Any]:
    return {
        "id": invite.id,
        "course_id": invite.course_id,
        "code": invite.code,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "expires_at": invite.expires_at,
        "revoked_at": invite.revoked_at,
        "state": invite_state(invite),
        "created_by": invite.created_by,
        "created_at": invite.created_at,
    }


@routes.route("POST", "/courses/{course_id}/invites", name="invites.create", body=InviteBody,
              summary="Issue an invite code (the course's teacher or an admin):"
              " {\"max_uses\" (default 1), \"expires_at\"?}")
async def create(ctx: Ctx) -> Any:
    me = ctx.me
    body = ctx.parsed(InviteBody)
    course = await managed_course(ctx.db, me, ctx.param("course_id"))
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise unprocessable("expires_at must be in the future")
    invite = InviteCode(
        course_id=course.id,
        code=new_code(),
        max_uses=body.max_uses,
        expires_at=body.expires_at,
        created_by=me.id,
    )
    ctx.db.add(invite)
    await ctx.db.flush()
    ctx.audit_detail["invite_id"] = invite.id
    return json(invite_json(invite), status=201)


@routes.route("GET", "/courses/{course_id}/invites", name="invites.list",
              summary="A course's invite codes, newest first (its teacher or an admin)")
async def list_invites(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    rows = (
        await ctx.db.scalars(
            select(InviteCode)
            .where(InviteCode.course_id == course.id)
            .order_by(InviteCode.id.desc())
        )
    ).all()
    return json({"results": [invite_json(i) for i in rows]})


@routes.route("DELETE", "/invites/{invite_id}", name="invites.revoke",
              summary="Revoke an invite code (the course's teacher or an admin); students"
              " already enrolled with it keep their place")
async def revoke(ctx: Ctx) -> Any:
    invite = await ctx.db.get(InviteCode, ctx.param("invite_id"))
    if invite is None:
        raise not_found("invite")
    try:
        await managed_course(ctx.db, ctx.me, invite.course_id)
    except ApiError as exc:
        # The course is hidden from the caller: so is its invite.
        raise not_found("invite") if exc.status == 404 else exc from None
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
    return no_content()
