"""Data protection: a person's own export (GET /me/export) and erasure by an admin
(POST /users/{id}/erase). The rules are in control/privacy/."""

from __future__ import annotations

from typing import Any

from control.api.live_notice import notify_keys_revoked
from control.errors import not_found
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import Role
from control.privacy.erasure import erase_user
from control.privacy.export import personal_export

routes = Routes("privacy")


# Audited like a roster read: who took a copy of a person's data, and when.
@routes.route("GET", "/me/export", name="privacy.export", audit_read=True,
              summary="Everything the platform holds about the signed-in person, as JSON")
async def export(ctx: Ctx) -> Any:
    return json(await personal_export(ctx.db, ctx.me))


@routes.route("POST", "/users/{user_id}/erase", name="privacy.erase",
              summary="Erase a person: personal data removed, records kept anonymised (admin)")
async def erase(ctx: Ctx) -> Any:
    admin = ctx.require_role(Role.ADMIN)
    erased = await erase_user(ctx.db, ctx.param("user_id"), by=admin,
                              settings=ctx.state.settings.courses)
    if erased is None:
        raise not_found("user")
    user, revoked = erased
    notify_keys_revoked(ctx, revoked)
    ctx.audit_detail["erased_user_id"] = user.id
    return json({"id": user.id, "username": user.username, "erased_at": user.erased_at})
